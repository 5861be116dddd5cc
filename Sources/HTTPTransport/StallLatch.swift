import Backend
import CCurl
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A server taken as stalled once a request to it timed out unanswered: until a probe (one a
/// second) hears any HTTP answer, every call fails at once with EIO instead of waiting out
/// `--io-timeout` again. The kernel retries a failed lookup or read once, and a tool makes
/// several calls, so without this one stall cost each call two timeouts or more. Long-lived
/// streams (watches) neither check nor mark it: they re-establish themselves.
public final class StallLatch: Sendable {
  private struct State {
    var stalled = false
    var probing = false
    var probeURL: String
  }

  private let state: Mutex<State>
  private let loop: CurlMultiLoop
  private let settings: TransferSettings
  private let probeHeaders: [String]

  /// `probeURL`: a cheap GET whose answer, whatever its status, shows the server answers again.
  public init(
    loop: CurlMultiLoop, settings: TransferSettings, probeURL: String, probeHeaders: [String]
  ) {
    self.loop = loop
    self.settings = settings
    self.probeHeaders = probeHeaders
    state = Mutex(State(probeURL: probeURL))
  }

  /// Probes `url` from now on (a vendor learns its sandbox's address from its first lookup).
  public func probe(at url: String) {
    state.withLock { $0.probeURL = url }
  }

  public var isStalled: Bool { state.withLock { $0.stalled } }

  /// Throws EIO while the server is taken as stalled.
  public func check(_ target: String) throws {
    guard isStalled else { return }
    throw RemoteError(
      errno: EIO,
      "\(target): the server stopped answering (a check every second tells when it is back)")
  }

  /// Takes the server as stalled when `response` timed out before any answer.
  public func record(_ response: HTTPResponse) {
    if response.curlCode == CURLE_OPERATION_TIMEDOUT.rawValue && response.status == 0 {
      markStalled()
    }
  }

  /// Takes the server as stalled and starts the probe, unless it runs already.
  public func markStalled() {
    let startProbe = state.withLock { state -> Bool in
      state.stalled = true
      defer { state.probing = true }
      return !state.probing
    }
    guard startProbe else { return }
    Task { [self] in
      while true {
        try? await Task.sleep(for: .seconds(1))
        let url = state.withLock { $0.probeURL }
        guard
          let transfer = try? CurlTransfer(
            HTTPRequest(method: .get, url: url, headers: probeHeaders, deadline: 2),
            settings: settings)
        else { continue }
        let response = await loop.perform(transfer)
        // Cancelled, or the loop was shut down: nobody asks any more.
        if response.cancelled || response.curlCode == CURLE_ABORTED_BY_CALLBACK.rawValue { return }
        // Any HTTP answer: the server reads and writes again.
        if response.status != 0 {
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
