import Backend
import CCurl
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A vendor's HTTP API as its SDK calls it: fixed headers on every request (the key), retries
/// of the statuses the SDK retries (429 within its `Retry-After` limit), and failures below
/// HTTP as one line naming the server. What a status means stays with the vendor's client.
/// `--io-timeout` (the settings' low-speed time) bounds what a call waits for an answer,
/// retries included, and a stalled server fails calls at once (`stall`).
public final class RetryingHTTPClient: Sendable {
  public struct Policy: Sendable {
    /// Waits before each retry; their count is the number of retries.
    public var delays: [Double]
    /// A 429 asking for a longer wait than this is not retried.
    public var longestRetryAfter: Double
    /// Statuses retried besides 429.
    public var retriedStatuses: Set<Int>

    public init(delays: [Double], longestRetryAfter: Double, retriedStatuses: Set<Int>) {
      self.delays = delays
      self.longestRetryAfter = longestRetryAfter
      self.retriedStatuses = retriedStatuses
    }
  }

  public let loop: CurlMultiLoop
  private let settings: TransferSettings
  private let headers: [String]
  private let policy: Policy
  /// Names the server in messages (its base URL).
  private let server: String
  /// Set while the server is taken as stalled; probes `server` unless told another address.
  public let stall: StallLatch

  public init(settings: TransferSettings, headers: [String], policy: Policy, server: String)
    throws
  {
    self.settings = settings
    self.headers = headers
    self.policy = policy
    self.server = server
    loop = try CurlMultiLoop()
    stall = StallLatch(loop: loop, settings: settings, probeURL: server, probeHeaders: headers)
  }

  /// Sends the request `make` builds (afresh for each attempt), retrying per the policy and on
  /// network errors. A request that is not `idempotent` (a command) is retried only when it
  /// cannot have reached the server. Retries fit in `--io-timeout`, counted from the call or
  /// from the last byte it received: a retry gets what is left as its stall limit, and none
  /// starts with less than a second left or once the server is taken as stalled.
  public func send(idempotent: Bool, _ make: () throws -> HTTPRequest) async throws
    -> HTTPResponse
  {
    try stall.check(server)
    var attempt = 0
    var settings = settings
    var waitingSince = ContinuousClock.now
    while true {
      var request = try make()
      request.headers.append(contentsOf: headers)
      let transfer: CurlTransfer
      do {
        transfer = try CurlTransfer(request, settings: settings)
      } catch {
        throw RemoteError(errno: EIO, "cannot set up a request to \(request.url): \(error)")
      }
      let response = await loop.perform(transfer)
      if response.cancelled { throw RemoteError(errno: EINTR, "the request was cancelled") }
      stall.record(response)
      guard attempt < policy.delays.count, !stall.isStalled,
        let wait = retryWait(response, idempotent: idempotent)
      else { return response }
      if response.bytesReceived > 0 { waitingSince = .now }
      let delay = max(wait, policy.delays[attempt]) * Double.random(in: 1...1.2)
      let left = self.settings.lowSpeedTime - seconds(since: waitingSince) - delay
      guard left >= 1 else { return response }
      settings.lowSpeedTime = left.rounded(.down)
      attempt += 1
      try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
    }
  }

  private func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = (ContinuousClock.now - start).components
    return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
  }

  /// How long to wait before another attempt, or nil when there is none.
  private func retryWait(_ response: HTTPResponse, idempotent: Bool) -> Double? {
    if response.curlCode != CURLE_OK.rawValue {
      guard !response.limitReached, response.localFailure == nil, response.localErrno == 0 else {
        return nil
      }
      let code = CURLcode(rawValue: response.curlCode)
      // Nobody listens there (a server that was stopped or restarts): tried again a second
      // later it rarely is, and each try is time the caller waits.
      if code == CURLE_COULDNT_CONNECT && response.osErrno == ECONNREFUSED { return nil }
      // A body cut short goes back to the caller, whose size check tries once more (reads,
      // downloads) or resumes by offset (command streams): retrying here too multiplies waits.
      if code == CURLE_PARTIAL_FILE { return nil }
      let unsent = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST
      return idempotent || unsent ? 0 : nil
    }
    if response.status == 429 {
      let asked = response.retryAfter.flatMap { Double($0.trimmingASCIIWhitespace()) } ?? 0
      return asked > policy.longestRetryAfter ? nil : asked
    }
    return policy.retriedStatuses.contains(response.status) ? 0 : nil
  }

  /// Streams the answer of the request `make` builds into `localPath` (created or emptied),
  /// checked against `expectedSize`: a body cut short, or shorter than the size stat'ed before
  /// (tried once more), is EIO, and the local file is then empty. `check` throws the error of a
  /// non-2xx answer. Returns the bytes written.
  public func download(
    to localPath: String, expectedSize: UInt64, context: String,
    check: (HTTPResponse) throws -> Void, _ make: () throws -> HTTPRequest
  ) async throws -> UInt64 {
    let descriptor = open(localPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw LocalError(errno: errno, "open for \(context)", localPath) }
    defer { close(descriptor) }
    var attempt = 0
    while true {
      attempt += 1
      do {
        let response = try await send(idempotent: true) {
          guard ftruncate(descriptor, 0) == 0 else {
            throw LocalError(errno: errno, "truncate for \(context)", localPath)
          }
          var request = try make()
          request.sink = .file(descriptor: descriptor)
          request.bulk = true
          return request
        }
        // A body cut short (Content-Length not reached) after the retries, or a file that
        // shrank since it was stat'ed (tried once more): truncation, never served.
        let cut = response.isSuccessStatus && response.curlCode == CURLE_PARTIAL_FILE.rawValue
        if !cut {
          try checkTransport(response, context: context)
          try check(response)
        }
        let received = response.bytesReceived
        if cut || (expectedSize > 0 && received < expectedSize) {
          if !cut && attempt < 2 { continue }
          throw RemoteError(
            errno: EIO, "\(context): expected \(expectedSize) bytes, got \(received)")
        }
        return received
      } catch {
        // Nothing partial is left behind.
        _ = ftruncate(descriptor, 0)
        throw error
      }
    }
  }

  /// Throws the error of an exchange that did not end in a 2xx answer: `checkTransport`'s,
  /// else the vendor's reading of the status and body.
  public func check(
    _ response: HTTPResponse, context: String, error: (_ status: Int, _ body: [UInt8]) -> Error
  ) throws {
    try checkTransport(response, context: context)
    guard response.isSuccessStatus else { throw error(response.status, response.body) }
  }

  /// JSON bodies as the vendors' SDKs send them (slashes in paths unescaped).
  public static let jsonEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    return encoder
  }()

  /// Throws when the exchange failed below HTTP (no answer, a broken connection, the local
  /// file); returns when a status arrived, whatever it is.
  public func checkTransport(_ response: HTTPResponse, context: String) throws {
    guard response.curlCode != CURLE_OK.rawValue && !response.limitReached else { return }
    if response.localErrno != 0 {
      throw LocalError(
        errno: response.localErrno, context, "the local file", detail: response.localFailure)
    }
    if let local = response.localFailure {
      throw RemoteError(errno: EIO, "\(context): \(local)")
    }
    throw RemoteError(errno: EIO, "\(context): \(describeFailure(response))")
  }

  /// One line saying why the server could not be reached or the exchange broke off.
  public func describeFailure(_ response: HTTPResponse) -> String {
    switch CURLcode(rawValue: response.curlCode) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return "cannot resolve the host of \(server) (\(response.curlMessage))"
    case CURLE_COULDNT_CONNECT:
      return "cannot connect to \(server): \(response.curlMessage)"
    case CURLE_OPERATION_TIMEDOUT:
      return "no answer from \(server) in time: \(response.curlMessage)"
    case CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING:
      return "the connection to \(server) broke: \(response.curlMessage)"
    default:
      return "request to \(server) failed: \(response.curlMessage)"
    }
  }
}
