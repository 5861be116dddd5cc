import AgentCore
import ArgumentParser

print("sandbox-agent: not built yet")
