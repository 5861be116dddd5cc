import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A server taken as stalled once a call to it went unanswered: until a probe (one a second)
/// hears it again, every call fails at once with EIO instead of waiting out `--io-timeout`
/// again. The kernel retries a failed lookup or read once, and a tool makes several calls, so
/// without this one stall cost each call two timeouts or more. Each transport brings its probe
/// (an HTTP GET, a gRPC call).
public final class StalledServer: Sendable {
  public enum ProbeResult: Sendable {
    /// The server answered: calls go to it again.
    case answered
    /// No answer yet: probe again in a second.
    case silent
    /// Nobody asks any more (the transport shut down): stop probing.
    case gone
  }

  private struct State {
    var stalled = false
    var probing = false
    var stopped = false
  }

  private let state = Mutex(State())
  private let probe: @Sendable () async -> ProbeResult

  public init(probe: @escaping @Sendable () async -> ProbeResult) {
    self.probe = probe
  }

  public var isStalled: Bool { state.withLock { $0.stalled } }

  /// Throws EIO while the server is taken as stalled.
  public func check(_ target: String) throws {
    guard isStalled else { return }
    throw RemoteError(
      errno: EIO,
      "\(target): the server stopped answering (a check every second tells when it is back)")
  }

  /// Ends the probing: the transport shuts down.
  public func stop() {
    state.withLock { $0.stopped = true }
  }

  /// Takes the server as stalled and starts probing, unless that runs already.
  public func markStalled() {
    let start = state.withLock { state -> Bool in
      state.stalled = true
      defer { state.probing = true }
      return !state.probing
    }
    guard start else { return }
    Task { [self] in
      while !state.withLock({ $0.stopped }) {
        try? await Task.sleep(for: .seconds(1))
        switch await probe() {
        case .silent:
          continue
        case .gone:
          return
        case .answered:
          state.withLock {
            $0.stalled = false
            $0.probing = false
          }
          return
        }
      }
    }
  }
}
