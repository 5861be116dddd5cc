import ArgumentParser
import Backend
import DataLayer
import FilesystemCore
import Foundation
import FuseBridge
import Logging
import Synchronization

struct MountCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sandbox-mount",
    abstract:
      "Mount a sandbox's files (E2B/envd, sandbox-agent, Vercel or LangSmith) on a local directory through FUSE.",
    discussion: """
      Unmount with: fusermount3 -u MOUNTPOINT (or Ctrl-C / SIGTERM with -f).
      sandbox-mount sync MOUNTPOINT waits until every change reached the sandbox;
      sandbox-mount status MOUNTPOINT [--json] shows pending changes and failures.
      """)

  @Argument(
    help:
      "e2b://SANDBOX_ID (with E2B_API_KEY), vercel://SANDBOX_NAME (with VERCEL_TOKEN), langsmith://BOX_NAME (with LANGSMITH_API_KEY), cwsandbox://SANDBOX_ID (with CWSANDBOX_API_KEY), or the sandbox's file daemon, e.g. http://127.0.0.1:49983"
  )
  var url: String

  @Argument(help: "An existing, empty directory to mount on.")
  var mountpoint: String

  @Option(
    name: .customShort("o"),
    help:
      "Mount options: allow_other, default_permissions, ro, uid=N, gid=N, …, and any long option below as name=value or flag (token_file=F,read_only); mount(8)'s _netdev, nofail, x-*, … are ignored (repeatable)"
  )
  var options: [String] = []

  @Flag(name: .customShort("f"), help: "Stay in the foreground.")
  var foreground = false

  @Flag(name: .customShort("d"), help: "Debug: foreground, with libfuse's request log.")
  var debug = false

  @Option(
    help:
      "A file holding the access token (else $SANDBOX_TOKEN; for vercel://, $VERCEL_TOKEN; for langsmith://, $LANGSMITH_API_KEY; for cwsandbox://, $CWSANDBOX_API_KEY); not for e2b://."
  )
  var tokenFile: String?

  @Option(help: "With e2b://: a file holding the E2B API key (else $E2B_API_KEY).")
  var apiKeyFile: String?

  @Option(
    help: "With e2b://: seconds the sandbox should stay alive from now (default: E2B's, 300).")
  var sandboxTimeout: Int?

  @Option(
    help:
      "With vercel://: Vercel's API (default https://vercel.com/api). With langsmith://: LangSmith's endpoint (else $LANGSMITH_ENDPOINT, else https://api.smith.langchain.com). With cwsandbox://: the API's base URL, http:// for h2c (else $CWSANDBOX_BASE_URL, else https://api.cwsandbox.com)."
  )
  var apiURL: String?

  @Option(help: "With vercel://: the team ID sent as ?teamId= (else $VERCEL_TEAM_ID).")
  var team: String?

  @Option(help: "With vercel://: the project ID of the sandbox (else $VERCEL_PROJECT_ID).")
  var project: String?

  @Flag(help: "With vercel://: run the sandbox commands with sudo, as the SDK's sudo: true.")
  var sudo = false

  @Option(help: "A PEM file of the CA certificates to trust for https (a private CA).")
  var caFile: String?

  @Flag(help: "Send the token over plain http:// to a host that is not loopback.")
  var insecure = false

  @Option(help: "The sandbox user requests act as (default: the sandbox's own).")
  var user: String?

  @Option(help: "The remote folder to mount.")
  var root: String = "/"

  @Flag(help: "Mount read-only.")
  var readOnly = false

  @Flag(
    help:
      "Read whole files once into the cache and serve reads from the copy, as for a sandbox without ranged reads (a server whose ranges are slow, or tests)."
  )
  var wholeFileReads = false

  @Option(help: "trace, debug, info, notice, warning, error or critical.")
  var logLevel: String = "info"

  @Option(help: "Where the daemon logs (default: nowhere once daemonized).")
  var logFile: String?

  @Option(help: "Seconds to wait for a connection to the sandbox.")
  var connectTimeout: Double = 10

  @Option(help: "Seconds a transfer may stall before it fails with EIO.")
  var ioTimeout: Double = 30

  @Option(
    help:
      "Seconds the kernel and our caches trust a file's attributes (and listings) (default: 1; in a watched folder \(Int(CacheDefaults.watchedTimeout)))."
  )
  var attrTimeout: Double?

  @Option(
    help:
      "Seconds the kernel trusts a name's lookup (default: 1; in a watched folder \(Int(CacheDefaults.watchedTimeout)))."
  )
  var entryTimeout: Double?

  @Option(
    help:
      "on: where the sandbox can watch (envd), changes made inside it show at once; off: after the timeouts."
  )
  var watch: WatchMode = .on

  @Option(
    help:
      "Folders watched at once (the least recently used stops first; new watches start at most 10 a second after a burst of this many)."
  )
  var watchLimit: Int = CacheDefaults.watchLimit

  @Option(help: "Seconds the kernel trusts that a name does not exist (0: ask every time).")
  var negativeTimeout: Double = CacheDefaults.negativeTimeout

  @Option(help: "Kernel readahead window in KiB (0: the kernel's 128 KiB default; needs root).")
  var readahead: Int = 1024

  @Option(help: "Bytes per cached block, the unit of fetching (e.g. 1M).")
  var blockSize: ByteCount = ByteCount(bytes: 1 << 20)

  @Option(help: "Memory for cached blocks and fetches in flight (e.g. 256M).")
  var memoryCache: ByteCount = ByteCount(bytes: 256 << 20)

  @Option(help: "The largest read-ahead window per open file (0: no prefetch).")
  var prefetchMax: ByteCount = ByteCount(bytes: 64 << 20)

  @Option(
    help:
      "Folder for a disk block cache kept across mounts (and for staging files; default: memory only, staging in $TMPDIR or /tmp)."
  )
  var cacheDir: String?

  @Option(
    help:
      "Bytes of blocks kept in --cache-dir (e.g. 4G); for a backend without ranged reads, of whole-file copies."
  )
  var cacheSize: ByteCount = ByteCount(bytes: 4 << 30)

  @Option(
    help:
      "on: a change is done once journaled on local disk and reaches the sandbox in the background (sandbox-mount sync waits for it); off: every close waits for the sandbox."
  )
  var writeBack: WriteBackMode = .on

  @Option(
    help:
      "Folder for the write-back journal (default: $XDG_STATE_HOME/sandbox-mount/…, else ~/.local/state/sandbox-mount/…, one per sandbox URL and --root)."
  )
  var stateDir: String?

  @Option(help: "Seconds an unmount waits for the journal to reach the sandbox.")
  var drainTimeout: Double = 60

  enum WriteBackMode: String, ExpressibleByArgument, Sendable {
    case on, off
  }

  enum WatchMode: String, ExpressibleByArgument, Sendable {
    case on, off
  }

  var attributeTimeout: Double { attrTimeout ?? CacheDefaults.attributeTimeout }

  /// envd and e2b:// take none of vercel://'s options.
  func refuseVercelOptions() throws {
    guard apiURL == nil, team == nil, project == nil, !sudo else {
      throw MountFailure(
        "--api-url, --team, --project and --sudo are for vercel://SANDBOX_NAME URLs")
    }
  }

  func validate() throws {
    guard Logger.Level(rawValue: logLevel) != nil else {
      throw ValidationError("unknown log level '\(logLevel)'")
    }
    guard (1...256).contains(watchLimit) else {
      throw ValidationError("--watch-limit must be between 1 and 256")
    }
    guard connectTimeout > 0, ioTimeout > 0, attributeTimeout >= 0, entryTimeout ?? 0 >= 0,
      negativeTimeout >= 0, readahead >= 0
    else {
      throw ValidationError("timeouts and --readahead must not be negative")
    }
    guard (4 << 10)...(64 << 20) ~= blockSize.bytes else {
      throw ValidationError("--block-size must be between 4K and 64M")
    }
    guard memoryCache.bytes >= 2 * blockSize.bytes, memoryCache.bytes <= 1 << 40 else {
      throw ValidationError("--memory-cache must hold at least two blocks (2 × --block-size)")
    }
    guard prefetchMax.bytes <= 1 << 32 else { throw ValidationError("--prefetch-max is too big") }
    guard root.hasPrefix("/") else { throw ValidationError("--root must be an absolute path") }
    guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout must not be negative") }
    guard (sandboxTimeout ?? 1) > 0 else {
      throw ValidationError("--sandbox-timeout must be positive")
    }
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
    let readOnly = self.readOnly || mountOptions.readOnly
    let factory = try BackendRegistry.factory(for: url)
    let mountpoint = try Preflight.checkMountpoint(self.mountpoint)
    if let caFile { try Preflight.checkReadable(caFile, what: "CA file") }
    let opened = try await factory.open(self, readOnly)
    let watching = watch == .on ? opened.watcher : nil
    let ownChanges = watching.map { _ in OwnChanges() }
    let writesBack = !readOnly && self.writeBack != .off
    let unsynced = writesBack ? UnsyncedDirectories() : nil
    let observers: [any RemoteChangeObserver] =
      [ownChanges as (any RemoteChangeObserver)?, unsynced].compactMap { $0 }
    // Innermost, so a journal's drain counts as our change when it reaches the sandbox.
    let backend: any RemoteFilesystem =
      observers.isEmpty
      ? opened.filesystem
      : ChangeObservingFilesystem(inner: opened.filesystem, observers: observers)
    // Not a defer: stopping awaits the transfer thread, which must not block a pool thread.
    do {
      var configuration = FilesystemConfiguration(
        ownerUID: mountOptions.ownerUID ?? getuid(), ownerGID: mountOptions.ownerGID ?? getgid(),
        attributeTimeout: attributeTimeout,
        entryTimeout: entryTimeout ?? CacheDefaults.entryTimeout, negativeTimeout: negativeTimeout,
        readOnly: readOnly,
        stagingParent: cacheDir ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
      var declared = await backend.capabilities()
      if wholeFileReads { declared.rangedReads = false }
      let capabilities = declared
      let watchConfiguration =
        capabilities.watch && watching != nil
        ? WatchConfiguration(
          limit: watchLimit, attributeTimeout: attrTimeout ?? CacheDefaults.watchedTimeout,
          entryTimeout: entryTimeout ?? CacheDefaults.watchedTimeout) : nil
      // Numeric ids come from the extension, or on stock envd from the owner names it gives,
      // mapped with the sandbox's own /etc/passwd and /etc/group.
      configuration.showRemoteOwners = mountOptions.showRemoteOwners
      configuration.actAsCaller = configuration.showRemoteOwners && capabilities.actsAsCaller
      if configuration.showRemoteOwners && !capabilities.actsAsCaller {
        logger.notice(
          "idmap=none: the sandbox cannot act as each caller (its agent does not run as root); changes are made as its own user"
        )
      }
      let writeBack =
        writesBack
        ? try await startWriteBack(
          backend, unsynced: unsynced, journalKey: opened.journalKey ?? url, logger) : nil
      let remote: any RemoteFilesystem = writeBack?.backend ?? backend
      configuration.writeBack = writeBack != nil
      let filesystem: Filesystem
      do {
        let reader = try makeFileReader(
          backend: remote, capabilities: capabilities, blockCache: blockCacheConfiguration(),
          wholeFiles: WholeFileConfiguration(
            parentDirectory: configuration.stagingParent, budget: cacheSize.bytes),
          logger: logger)
        filesystem = try Filesystem(
          backend: remote, capabilities: capabilities, configuration: configuration,
          reader: reader,
          watcher: watching.map { writeBack?.backend.watching(through: $0) ?? $0 },
          watch: watchConfiguration,
          ownChanges: ownChanges, logger: logger)
      } catch let error as RemoteError {
        throw MountFailure(error.message)
      } catch let error as LocalError {
        throw MountFailure(error.description)
      }
      defer { filesystem.shutdown() }
      if let view = writeBack?.backend {
        filesystem.observeRemoteChanges { view.remoteChanged(in: $0) }
      }

      let fuseOptions =
        mountOptions.passedThrough + (readOnly && !mountOptions.readOnly ? ["ro"] : [])
      let session: FuseSession
      do {
        session = try FuseSession(
          filesystem: filesystem, mountOptions: fuseOptions, debug: debug || mountOptions.debug,
          readaheadKiB: readahead, lightRequestExecutor: opened.lightRequestExecutor,
          logger: logger)
        try session.mount(at: mountpoint)
      } catch let error as FuseSessionError {
        throw MountFailure(error.description)
      }
      logger.info("mounted \(opened.description)\(root == "/" ? "" : root) on \(mountpoint)")
      if Daemon.isBackgroundCopy { Daemon.reportMounted(logFile: logFile) }

      let control = try? ControlSocket(
        path: StateFolder.controlSocket(forMountpoint: mountpoint)
      ) { [self] request in
        controlAnswer(
          request, writeBack: writeBack?.backend, mountpoint: mountpoint, mode: capabilities,
          watches: filesystem.watchCounts)
      }
      shutdown.serving(session, at: mountpoint)
      let status = await session.run()
      logger.info("unmounted \(mountpoint)")
      if let writeBack { await finishWriteBack(writeBack, logger) }
      control?.remove()
      if status != 0 { throw ExitCode(1) }
    } catch {
      await opened.shutdown()
      throw error
    }
    await opened.shutdown()
  }

  /// The journal of this sandbox and root, replayed into the view before anything is served.
  private func startWriteBack(
    _ backend: any RemoteFilesystem, unsynced: UnsyncedDirectories?, journalKey: String,
    _ logger: Logger
  ) async throws -> (backend: WriteBackBackend, folder: StateFolder) {
    let folder = try StateFolder.open(explicit: stateDir, url: journalKey, root: root)
    do {
      var configuration = WriteBackConfiguration(stateDirectory: folder.path)
      configuration.pinLifetime = .milliseconds(Int64(max(attributeTimeout, 1) * 1000))
      let writeBack = try WriteBackBackend(
        inner: backend, configuration: configuration, unsynced: unsynced, logger: logger)
      let replayed = try await writeBack.replayJournal()
      if replayed > 0 {
        logger.notice(
          "\(replayed) changes of an earlier mount were not yet in the sandbox; applying them now")
      }
      return (writeBack, folder)
    } catch let error as RemoteError {
      throw MountFailure("write-back journal in \(folder.path): \(error.message)")
    } catch let error as LocalError {
      throw MountFailure(error.description)
    }
  }

  /// Unmounted: the journal drains for at most --drain-timeout; what is left stays for the
  /// next mount of the same sandbox and root.
  private func finishWriteBack(
    _ writeBack: (backend: WriteBackBackend, folder: StateFolder), _ logger: Logger
  ) async {
    let pending = writeBack.backend.progress.pendingChanges
    guard pending > 0 else { return }
    logger.notice("applying \(pending) pending changes to the sandbox before exiting")
    let left = await writeBack.backend.drain(timeout: .milliseconds(Int64(drainTimeout * 1000)))
    if left > 0 {
      logger.warning(
        "\(left) changes did not reach the sandbox; they stay in \(writeBack.folder.path) and the next mount of \(url)\(root == "/" ? "" : root) applies them"
      )
    }
  }

  /// What the control socket answers: `status` (JSON), `retry-failed`, `discard-failed`.
  private func controlAnswer(
    _ request: String, writeBack: WriteBackBackend?, mountpoint: String,
    mode capabilities: RemoteCapabilities,
    watches: (watched: Int, active: Int, invalidations: Int, ownEchoes: Int, reestablished: Int)?
  ) -> String {
    switch request {
    case "retry-failed":
      writeBack?.retryFailed()
      return "{}"
    case "discard-failed":
      writeBack?.discardFailed()
      return "{}"
    default:
      break
    }
    var status: [String: Any] = [
      "mountpoint": mountpoint, "url": url, "root": root,
      "backend": capabilities.description,
      "writeBack": writeBack != nil ? "on" : "off",
      "memoryCacheBytes": memoryCache.bytes,
      "diskCache": cacheDir.map { "\($0) (\(cacheSize.bytes) bytes)" } ?? "off",
    ]
    if let watches {
      status["watch"] = [
        "folders": watches.watched, "active": watches.active,
        "invalidations": watches.invalidations, "ownEchoes": watches.ownEchoes,
        "reestablished": watches.reestablished,
      ]
    }
    if let writeBack {
      let progress = writeBack.progress
      status["stateDir"] = writeBack.configuration.stateDirectory
      status["connection"] = progress.retrying ? "unreachable, retrying" : "ok"
      status["pendingChanges"] = progress.pendingChanges
      status["pendingBytes"] = progress.pendingBytes
      status["appliedChanges"] = progress.appliedChanges
      status["appliedBytes"] = progress.appliedBytes
      status["failures"] = progress.failures
      status["conflicts"] = progress.conflicts
    } else {
      status["connection"] = "ok"
      status["pendingChanges"] = 0
      status["pendingBytes"] = 0
      status["failures"] = [String]()
      status["conflicts"] = [String]()
    }
    guard let data = try? JSONSerialization.data(withJSONObject: status, options: [.sortedKeys])
    else { return "{}" }
    return String(decoding: data, as: UTF8.self)
  }

  private func blockCacheConfiguration() -> BlockCacheConfiguration {
    let blockSize = Int(self.blockSize.bytes)
    let prefetch = Int(prefetchMax.bytes)
    return BlockCacheConfiguration(
      blockSize: blockSize, memoryBudget: Int(memoryCache.bytes),
      diskDirectory: cacheDir.map { $0 + "/sandbox-mount-blocks" }, diskBudget: cacheSize.bytes,
      // Blocks of two sandboxes never mix in one --cache-dir.
      namespace: "\(url)|\(root)", initialPrefetch: min(blockSize, prefetch),
      maximumPrefetch: prefetch)
  }
}

/// Cache timeouts when none is given; README.md ("Caching and consistency") explains the choice.
enum CacheDefaults {
  static let attributeTimeout = 1.0
  static let entryTimeout = 1.0
  /// Attributes and names in a watched folder: its events invalidate them.
  static let watchedTimeout = 30.0
  static let watchLimit = 32
  static let negativeTimeout = 1.0
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
