import Backend
import CFuse
import DataLayer
import FilesystemCore
import Glibc
import Logging
import Synchronization

/// What every FUSE callback reaches through `fuse_req_userdata`: the filesystem, and the tasks
/// answering requests, counted so shutdown can wait for them (e.g. an upload at release).
final class RequestDispatcher: Sendable {
  let filesystem: Filesystem
  let logger: Logger
  let negativeTimeout: Double
  /// Asked of the kernel at FUSE_INIT; 0 keeps its default.
  let readaheadBytes: UInt32
  private let lightRequestExecutor: (any TaskExecutor)?
  private let inFlight = Mutex(0)
  /// Set when changes are made as their caller (`FilesystemConfiguration.actAsCaller`).
  private let callers: CallerCredentials?

  init(
    filesystem: Filesystem, readaheadBytes: UInt32, lightRequestExecutor: (any TaskExecutor)?,
    logger: Logger
  ) {
    self.filesystem = filesystem
    self.readaheadBytes = readaheadBytes
    self.lightRequestExecutor = lightRequestExecutor
    self.logger = logger
    self.negativeTimeout = filesystem.configuration.negativeTimeout
    self.callers = filesystem.configuration.actAsCaller ? CallerCredentials() : nil
  }

  /// The dispatcher behind a request; it lives as long as the session.
  static func of(_ request: fuse_req_t?) -> RequestDispatcher {
    Unmanaged<RequestDispatcher>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
  }

  /// How much a request does besides waiting on the remote.
  enum Weight {
    /// Metadata, small reads: one round trip and little CPU. Runs on the light-request executor.
    case light
    /// Large reads (copies of up to a MiB) and uploads (compression): the shared pool, so the
    /// transfer thread never waits behind them.
    case heavy
  }

  /// Answers `request` from a task: `work` replies on success; a thrown error is replied as its
  /// errno. The task starts on the calling libfuse thread and leaves it at its first real
  /// suspension: a change the write-back view answers (create, rename, chmod, …) is replied
  /// without a thread hop, which is most of what a FUSE round trip costs here. Until then the
  /// thread may block on local disk work (a close's journal fsync).
  func answer(
    _ request: fuse_req_t?, _ operation: StaticString, weight: Weight = .light,
    _ work: @escaping @Sendable (FuseRequest) async throws -> Void
  ) {
    let request = FuseRequest(raw: request!)
    let caller = callers?.identity(of: request.raw)
    inFlight.withLock { $0 += 1 }
    let executor = weight == .light ? lightRequestExecutor : nil
    _ = BlockingThreads.allowing {
      Task.immediate(executorPreference: executor) { [self] in
        defer { inFlight.withLock { $0 -= 1 } }
        do {
          if let caller {
            try await CallerIdentity.$current.withValue(caller) { try await work(request) }
          } else {
            try await work(request)
          }
        } catch {
          fail(request, error, operation)
        }
      }
    }
  }

  /// Answers `request` on the calling libfuse thread, for local work that never waits on the
  /// network.
  func answerNow(
    _ request: fuse_req_t?, _ operation: StaticString, _ work: (FuseRequest) throws -> Void
  ) {
    let request = FuseRequest(raw: request!)
    do {
      // No caller bound: what is answered here (a local pwrite, opendir) changes nothing remote.
      try work(request)
    } catch {
      fail(request, error, operation)
    }
  }

  /// Replies `error`'s errno and logs it at the level the error names: ordinary answers (ENOENT
  /// on lookup, ENOTEMPTY, …) at debug, failures of the sandbox at warning, of the local disk at
  /// error.
  func fail(_ request: FuseRequest, _ error: any Error, _ operation: StaticString) {
    request.replyError(errnoCode(for: error))
    let level = logLevel(for: error)
    logger.log(level: level, "\(operation)\(level >= .warning ? " failed" : ""): \(error)")
  }

  /// Waits until no request task is running, or `timeout` passes.
  func waitForRequests(timeout: Duration) async {
    let deadline = ContinuousClock.now + timeout
    while inFlight.withLock({ $0 }) > 0, ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(10))
    }
  }

  /// How long the kernel may keep `inode`'s attributes.
  func attributeTimeout(of inode: fuse_ino_t) -> Double {
    filesystem.kernelTimeouts(of: UInt64(inode)).attribute
  }

  func entryParameters(_ entry: Entry) -> fuse_entry_param {
    entryParameters(inode: entry.inode, attributes: entry.attributes)
  }

  /// An entry for the kernel. Inode numbers are never reused, so the generation stays 0.
  func entryParameters(inode: UInt64, attributes: Glibc.stat) -> fuse_entry_param {
    var parameters = fuse_entry_param()
    parameters.ino = fuse_ino_t(inode)
    parameters.generation = 0
    parameters.attr = attributes
    let timeouts = filesystem.kernelTimeouts(of: inode)
    parameters.attr_timeout = timeouts.attribute
    parameters.entry_timeout = timeouts.entry
    return parameters
  }

  /// "No such name", cached by the kernel for the negative timeout.
  func negativeEntryParameters() -> fuse_entry_param {
    var parameters = fuse_entry_param()
    parameters.ino = 0
    parameters.entry_timeout = negativeTimeout
    return parameters
  }
}
