import Backend
import CCurl
import HTTPTransport

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What E2B's API says about a sandbox it connected (the `Sandbox` model of its OpenAPI spec).
public struct E2BSandbox: Decodable, Sendable {
  public var sandboxID: String
  public var envdVersion: String
  /// Absent for a sandbox created without `secure`.
  public var envdAccessToken: String?
  /// Where the sandbox's traffic goes, when it differs from the client's domain.
  public var domain: String?

  public init(
    sandboxID: String, envdVersion: String, envdAccessToken: String? = nil, domain: String? = nil
  ) {
    self.sandboxID = sandboxID
    self.envdVersion = envdVersion
    self.envdAccessToken = envdAccessToken
    self.domain = domain
  }
}

/// The one control-plane call a mount makes, as the Python SDK's `Sandbox.connect(id)` does:
/// `POST {api}/v2/sandboxes/{id}/connect` with `X-API-KEY`, which also resumes a paused sandbox.
public struct E2BControlPlane: Sendable {
  /// `https://api.e2b.app`, or `E2B_API_URL`.
  public var apiURL: String
  public var apiKey: String
  public var caFile: String?
  public var connectTimeout: Double = 10
  /// Seconds without a byte of the answer before giving up.
  public var stallTimeout: Double = 30
  /// The SDK's request timeout; a resume answers within it.
  public var requestTimeout: Double = 60

  public init(apiURL: String, apiKey: String) {
    var trimmed = apiURL.trimmingASCIIWhitespace()
    while trimmed.hasSuffix("/") { trimmed.removeLast() }
    self.apiURL = trimmed
    self.apiKey = apiKey
  }

  /// The sandbox's envd token and version. `timeout`: seconds the sandbox should live from now
  /// (E2B only ever extends it); nil leaves E2B's default. Throws a one-line RemoteError.
  public func connect(sandboxID: String, timeout: Int? = nil) async throws -> E2BSandbox {
    guard !apiKey.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
      throw RemoteError(errno: EINVAL, "the E2B API key contains control characters")
    }
    let url = "\(apiURL)/v2/sandboxes/\(sandboxID)/connect"
    let body = timeout.map { "{\"timeout\":\($0)}" } ?? "{}"
    let request = HTTPRequest(
      method: .post, url: url,
      headers: [
        "X-API-KEY: \(apiKey)", "Content-Type: application/json", "Accept: application/json",
      ],
      body: .bytes(Array(body.utf8)), deadline: requestTimeout)
    let response = try await send(request)
    if response.curlCode != CURLE_OK.rawValue {
      throw RemoteError(errno: EIO, unreachable(response))
    }
    guard response.isSuccessStatus else {
      throw RemoteError(errno: EIO, refusal(response, sandboxID: sandboxID))
    }
    do {
      return try decodeJSON(E2BSandbox.self, response.body)
    } catch {
      throw RemoteError(
        errno: EIO,
        "the E2B API at \(apiURL) answered the connect of sandbox \(sandboxID) with something other than a sandbox (\(error))"
      )
    }
  }

  private func send(_ request: HTTPRequest) async throws -> HTTPResponse {
    let settings = TransferSettings(
      connectTimeout: connectTimeout, lowSpeedTime: stallTimeout, lowSpeedLimit: 1,
      userAgent: EnvdClient.userAgent, caFile: caFile)
    let transfer: CurlTransfer
    let loop: CurlMultiLoop
    do {
      transfer = try CurlTransfer(request, settings: settings)
      loop = try CurlMultiLoop(maxHostConnections: 1)
    } catch {
      throw RemoteError(errno: EIO, "cannot set up a request to \(request.url): \(error)")
    }
    let response = await loop.perform(transfer)
    await loop.shutdownWithoutBlocking()
    if response.cancelled { throw RemoteError(errno: EINTR, "the request was cancelled") }
    return response
  }

  private func unreachable(_ response: HTTPResponse) -> String {
    if CURLcode(rawValue: response.curlCode) == CURLE_OPERATION_TIMEDOUT {
      return "the E2B API at \(apiURL) did not answer in time (timeout: \(response.curlMessage))"
    }
    return "cannot reach the E2B API: "
      + EnvdClient.describeFailure(response, of: apiURL, caFile: caFile)
  }

  /// One line for a non-2xx answer, with the API's own `message` when it sent one.
  private func refusal(_ response: HTTPResponse, sandboxID: String) -> String {
    struct APIError: Decodable { var message: String? }
    let message = (try? decodeJSON(APIError.self, response.body))?.message.map {
      $0.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    let detail = message.map { ": \($0.prefix(200))" } ?? ""
    switch response.status {
    case 401, 403:
      return
        "the E2B API rejected the API key (HTTP \(response.status)\(detail)); check E2B_API_KEY or --api-key-file"
    case 404:
      return
        "sandbox \(sandboxID) not found (HTTP 404\(detail)): unknown, killed, or of another team"
    default:
      return "the E2B API could not connect sandbox \(sandboxID) (HTTP \(response.status)\(detail))"
    }
  }
}
