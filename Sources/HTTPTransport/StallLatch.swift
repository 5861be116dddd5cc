import Backend
import CCurl
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// `StalledServer` for an HTTP server: taken as stalled once a request timed out unanswered,
/// heard again when a probe GET gets any HTTP answer. Long-lived streams (watches) neither check
/// nor mark it: they re-establish themselves.
public final class StallLatch: Sendable {
  /// Where the probe goes; shared with the probe, which outlives no latch.
  private final class ProbeTarget: Sendable {
    let url: Mutex<String>
    init(_ url: String) { self.url = Mutex(url) }
  }

  private let target: ProbeTarget
  private let server: StalledServer

  /// `probeURL`: a cheap GET whose answer, whatever its status, shows the server answers again.
  public init(
    loop: CurlMultiLoop, settings: TransferSettings, probeURL: String, probeHeaders: [String]
  ) {
    let target = ProbeTarget(probeURL)
    self.target = target
    server = StalledServer {
      guard
        let transfer = try? CurlTransfer(
          HTTPRequest(
            method: .get, url: target.url.withLock { $0 }, headers: probeHeaders, deadline: 2),
          settings: settings)
      else { return .silent }
      let response = await loop.perform(transfer)
      // Cancelled, or the loop was shut down: nobody asks any more.
      if response.cancelled || response.curlCode == CURLE_ABORTED_BY_CALLBACK.rawValue {
        return .gone
      }
      // Any HTTP answer: the server reads and writes again.
      return response.status != 0 ? .answered : .silent
    }
  }

  /// Probes `url` from now on (a vendor learns its sandbox's address from its first lookup).
  public func probe(at url: String) {
    target.url.withLock { $0 = url }
  }

  public var isStalled: Bool { server.isStalled }

  /// Throws EIO while the server is taken as stalled.
  public func check(_ target: String) throws { try server.check(target) }

  /// Takes the server as stalled when `response` timed out before any answer.
  public func record(_ response: HTTPResponse) {
    if response.curlCode == CURLE_OPERATION_TIMEDOUT.rawValue && response.status == 0 {
      markStalled()
    }
  }

  /// Takes the server as stalled and starts the probe, unless it runs already.
  public func markStalled() { server.markStalled() }
}
