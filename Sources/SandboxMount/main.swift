import ArgumentParser
import FuseBridge
import EnvdBackend

print("sandbox-mount: not built yet")
