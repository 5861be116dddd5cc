import Backend
import CCurl
import Foundation
import HTTPTransport
import NIOSSL
import Synchronization

/// LangSmith's sandbox REST surface: the control plane's box lookup, then the box's dataplane,
/// with `X-Api-Key`, the SDK's retries (502/503/504, 429 with `Retry-After`) and LangSmith's
/// `{detail:{error,message}}` bodies as errnos. Knows nothing of POSIX semantics.
final class LangSmithClient: Sendable {
  let configuration: LangSmithConfiguration
  let controlPlane: String
  let http: RetryingHTTPClient
  /// The box's `dataplane_url`, known once the control plane answered.
  private let dataplaneBase = Mutex<String?>(nil)

  static let userAgent = "sandbox-mount/0.1 (langsmith)"

  init(configuration: LangSmithConfiguration) throws {
    self.configuration = configuration
    let base = LangSmithConfiguration.controlPlane(configuration.endpoint)
    guard let parsed = URL(string: base), let scheme = parsed.scheme?.lowercased(),
      scheme == "http" || scheme == "https", parsed.host?.isEmpty == false, parsed.query == nil
    else {
      throw RemoteError(
        errno: EINVAL,
        "invalid LangSmith endpoint '\(configuration.endpoint)': expected http(s)://HOST[/PATH]")
    }
    controlPlane = base
    guard !configuration.apiKey.isEmpty,
      !configuration.apiKey.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
    else {
      throw RemoteError(errno: EINVAL, "the LangSmith API key is empty or holds control characters")
    }
    http = try RetryingHTTPClient(
      settings: TransferSettings(
        connectTimeout: configuration.connectTimeout, lowSpeedTime: configuration.lowSpeedTime,
        lowSpeedLimit: 1, userAgent: Self.userAgent, caFile: configuration.caFile),
      headers: ["X-Api-Key: \(configuration.apiKey)"],
      policy: .init(
        delays: configuration.retryDelays, longestRetryAfter: configuration.longestRetryAfter,
        retriedStatuses: [502, 503, 504]),
      server: base)
  }

  var transferThread: any TaskExecutor { http.loop }

  static func encode(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~/")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
  }

  /// A dataplane route, e.g. `download?path=…`.
  func dataplaneURL(_ route: String, path: String? = nil) -> String {
    let base = dataplaneBase.withLock { $0 } ?? controlPlane
    return base + "/" + route + (path.map { "?path=" + Self.encode($0) } ?? "")
  }

  /// A dataplane route as a WebSocket URL (`ws://` or `wss://`).
  func webSocketURL(_ route: String) -> String {
    let url = dataplaneURL(route)
    if url.hasPrefix("https://") { return "wss://" + url.dropFirst(8) }
    if url.hasPrefix("http://") { return "ws://" + url.dropFirst(7) }
    return url
  }

  /// TLS for the WebSocket: the system's roots, or only `--ca-file`'s.
  func webSocketTLS() throws -> TLSConfiguration? {
    guard dataplaneURL("").hasPrefix("https://") else { return nil }
    var tls = TLSConfiguration.makeClientConfiguration()
    if let caFile = configuration.caFile {
      tls.trustRoots = .file(caFile)
    }
    return tls
  }

  private struct Box: Decodable {
    var name: String?
    var status: String?
    var dataplane_url: String?
  }

  /// `GET …/boxes/{name}`: the dataplane every later call goes to.
  @discardableResult
  func lookUpBox() async throws -> String {
    let name = configuration.boxName
    let context = "look up the box '\(name)'"
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    let route =
      controlPlane + "/boxes/"
      + (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name)
    let response = try await http.send(idempotent: true) {
      HTTPRequest(
        method: .get, url: route, headers: ["Accept: application/json"],
        deadline: configuration.requestTimeout)
    }
    try check(response, context: context)
    guard let box = try? JSONDecoder().decode(Box.self, from: Data(response.body)),
      var dataplane = box.dataplane_url, !dataplane.isEmpty
    else {
      throw RemoteError(errno: EIO, "\(context): the answer names no dataplane_url")
    }
    let status = box.status ?? "ready"
    guard status == "ready" || status == "running" else {
      throw RemoteError(errno: EIO, "\(context): the box is \(status), not ready")
    }
    while dataplane.hasSuffix("/") { dataplane.removeLast() }
    dataplaneBase.withLock { $0 = dataplane }
    http.stall.probe(at: dataplane + "/")
    return dataplane
  }

  static var encoder: JSONEncoder { RetryingHTTPClient.jsonEncoder }

  // MARK: errors

  /// Throws the error of an exchange that did not end in a 2xx answer.
  func check(_ response: HTTPResponse, context: String) throws {
    try http.check(response, context: context) { error(status: $0, body: $1, context: context) }
  }

  private struct ErrorBody: Decodable {
    struct Detail: Decodable {
      var error: String?
      var message: String?
    }
    enum Shape: Decodable {
      case detail(Detail)
      case text(String)

      init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
          self = .text(text)
        } else {
          self = .detail(try container.decode(Detail.self))
        }
      }
    }
    var detail: Shape?
  }

  /// `{detail:{error,message}}` or `{detail:"…"}` as the errno Linux would give.
  func error(status: Int, body: [UInt8], context: String) -> RemoteError {
    var kind = ""
    var message = String(decoding: body.prefix(300), as: UTF8.self)
    switch (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.detail {
    case .detail(let detail)?:
      kind = detail.error ?? ""
      message = detail.message ?? message
    case .text(let text)?: message = text
    case nil: break
    }
    let said = "\(context): \(status) \(kind.isEmpty ? "" : kind + ": ")\(message)"
    switch (status, kind) {
    case (401, _):
      return RemoteError(
        errno: EACCES,
        "\(context): LangSmith refused the API key (401); check LANGSMITH_API_KEY or --token-file",
        kind: .failure)
    case (403, _): return RemoteError(errno: EACCES, said)
    case (404, _), (_, "FileNotFound"), (_, "NotFound"): return RemoteError(errno: ENOENT, said)
    case (413, _): return RemoteError(errno: EFBIG, said)
    case (507, _): return RemoteError(errno: ENOSPC, said)
    case (_, "InvalidPath"): return RemoteError(errno: EINVAL, said)
    case (400, "NotReady"), (503, _):
      return RemoteError(
        errno: EIO, "\(context): the box '\(configuration.boxName)' is not ready (\(said))",
        kind: .failure)
    default: return RemoteError(errno: EIO, said, kind: .failure)
    }
  }
}
