import ArgumentParser
import Backend
import EnvdBackend
import FilesystemCore
import Foundation
import FuseBridge
import Logging
import Synchronization

struct MountCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sandbox-mount",
    abstract: "Mount a sandbox's files (envd or sandbox-agent) on a local directory through FUSE.",
    discussion: "Unmount with: fusermount3 -u MOUNTPOINT (or Ctrl-C / SIGTERM with -f).")

  @Argument(help: "The sandbox's file daemon, e.g. http://127.0.0.1:49983")
  var url: String

  @Argument(help: "An existing, empty directory to mount on.")
  var mountpoint: String

  @Option(
    name: .customShort("o"),
    help: "Mount options: allow_other, default_permissions, ro, uid=N, gid=N, … (repeatable)")
  var options: [String] = []

  @Flag(name: .customShort("f"), help: "Stay in the foreground.")
  var foreground = false

  @Flag(name: .customShort("d"), help: "Debug: foreground, with libfuse's request log.")
  var debug = false

  @Option(help: "A file holding the access token (else $SANDBOX_TOKEN).")
  var tokenFile: String?

  @Option(help: "The sandbox user requests act as.")
  var user: String?

  @Option(help: "The remote folder to mount.")
  var root: String = "/"

  @Flag(help: "Mount read-only.")
  var readOnly = false

  @Option(help: "trace, debug, info, notice, warning, error or critical.")
  var logLevel: String = "info"

  @Option(help: "Where the daemon logs (default: nowhere once daemonized).")
  var logFile: String?

  @Option(help: "Seconds to wait for a connection to the sandbox.")
  var connectTimeout: Double = 10

  @Option(help: "Seconds a transfer may stall before it fails with EIO.")
  var ioTimeout: Double = 30

  @Option(help: "Seconds the kernel and our caches trust attributes and names.")
  var attrTimeout: Double = 1

  @Option(help: "Kernel readahead window in KiB (0: the kernel's 128 KiB default; needs root).")
  var readahead: Int = 1024

  @Option(help: "Folder for staging files of files open for writing (default $TMPDIR or /tmp).")
  var cacheDir: String?

  func validate() throws {
    guard Logger.Level(rawValue: logLevel) != nil else {
      throw ValidationError("unknown log level '\(logLevel)'")
    }
    guard connectTimeout > 0, ioTimeout > 0, attrTimeout >= 0, readahead >= 0 else {
      throw ValidationError("timeouts and --readahead must not be negative")
    }
    guard root.hasPrefix("/") else { throw ValidationError("--root must be an absolute path") }
  }

  func run() async throws {
    try await start()
  }

  /// Without -f or -d, and not already the background copy: the caller starts the background
  /// copy (see Daemon) instead of calling `start`.
  var startsBackgroundCopy: Bool {
    !foreground && !debug && !Daemon.isBackgroundCopy
  }

  /// Checks, mounts and serves until unmounted. `run()` under a name of its own: main.swift must
  /// not pick ArgumentParser's synchronous `run()` overload.
  func start() async throws {
    if Daemon.isBackgroundCopy { Daemon.detachFromTerminal() }
    do {
      try await mountAndServe()
    } catch let failure as MountFailure {
      FileHandle.standardError.write(Data("sandbox-mount: \(failure)\n".utf8))
      throw ExitCode.failure
    }
  }

  private func mountAndServe() async throws {
    let level = debug ? .debug : Logger.Level(rawValue: logLevel)!
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    let logger = Logger(label: "sandbox-mount")
    let shutdown = Shutdown(logger: logger)
    TerminationSignals.handle { signal in shutdown.signalled(signal) }

    let mountOptions = try MountOptions(options)
    try Preflight.checkURL(url)
    let mountpoint = try Preflight.checkMountpoint(self.mountpoint)
    let token = try Preflight.token(file: tokenFile)
    let readOnly = self.readOnly || mountOptions.readOnly

    var remote = EnvdConfiguration(baseURL: url)
    remote.accessToken = token
    remote.user = user
    remote.remoteRoot = root
    remote.connectTimeout = connectTimeout
    remote.lowSpeedTime = ioTimeout
    let backend: EnvdBackend
    do {
      backend = try EnvdBackend(configuration: remote)
      try await backend.verifyConnection()
    } catch let error as RemoteError {
      throw MountFailure("cannot use \(url): \(error.message)")
    }
    defer { backend.shutdown() }

    let configuration = FilesystemConfiguration(
      ownerUID: mountOptions.ownerUID ?? getuid(), ownerGID: mountOptions.ownerGID ?? getgid(),
      attributeTimeout: attrTimeout, entryTimeout: attrTimeout, readOnly: readOnly,
      stagingParent: cacheDir ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
    let filesystem: Filesystem
    do {
      filesystem = try Filesystem(backend: backend, configuration: configuration, logger: logger)
    } catch let error as RemoteError {
      throw MountFailure(error.message)
    }
    defer { filesystem.shutdown() }

    let fuseOptions =
      mountOptions.passedThrough + (readOnly && !mountOptions.readOnly ? ["ro"] : [])
    let session: FuseSession
    do {
      session = try FuseSession(
        filesystem: filesystem, mountOptions: fuseOptions, debug: debug || mountOptions.debug,
        readaheadKiB: readahead, logger: logger)
      try session.mount(at: mountpoint)
    } catch let error as FuseSessionError {
      throw MountFailure(error.description)
    }
    logger.info("mounted \(url)\(root == "/" ? "" : root) on \(mountpoint)")
    if Daemon.isBackgroundCopy { Daemon.reportMounted(logFile: logFile) }

    shutdown.serving(session, at: mountpoint)
    let status = await session.run()
    logger.info("unmounted \(mountpoint)")
    if status != 0 { throw ExitCode(1) }
  }
}

/// What a termination signal does: before the mount, exit at once (nothing to undo); once
/// mounted, unmount lazily so the loop ends and the process exits 0. A mount kept busy by open
/// files gets a grace period, then the process exits anyway (the kernel then fails the open
/// files with ENOTCONN); a second signal exits at once.
private final class Shutdown: Sendable {
  private struct State {
    var session: FuseSession?
    var mountpoint = ""
    var signals = 0
  }
  private let state = Mutex(State())
  private let logger: Logger
  private static let grace = 10.0

  init(logger: Logger) {
    self.logger = logger
  }

  func serving(_ session: FuseSession, at mountpoint: String) {
    state.withLock {
      $0.session = session
      $0.mountpoint = mountpoint
    }
  }

  func signalled(_ signal: Int32) {
    let (session, mountpoint, count) = state.withLock { state in
      state.signals += 1
      return (state.session, state.mountpoint, state.signals)
    }
    guard let session, count == 1 else {
      logger.info("signal \(signal): exiting")
      Foundation.exit(1)
    }
    logger.info("signal \(signal): unmounting \(mountpoint)")
    session.requestUnmount()
    DispatchQueue.global().asyncAfter(deadline: .now() + Self.grace) { [logger] in
      guard !session.hasStoppedServing else { return }
      logger.warning("\(mountpoint) still busy \(Int(Self.grace)) s after unmounting; exiting")
      Foundation.exit(0)
    }
  }
}
