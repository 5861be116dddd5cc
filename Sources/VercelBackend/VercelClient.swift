import Backend
import CCurl
import Foundation
import HTTPTransport
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Vercel Sandbox's REST surface: URLs with `?teamId=`, the bearer token, retries as the SDK
/// makes them, and Vercel's error bodies as errnos. Knows nothing of POSIX semantics.
final class VercelClient: Sendable {
  let configuration: VercelConfiguration
  let apiURL: String
  private let http: RetryingHTTPClient
  private let teamQuery: String
  /// `…/v2/sandboxes/sessions/{id}/`, known once the control plane answered.
  private let sessionBase = Mutex<String?>(nil)

  static let userAgent = "sandbox-mount/0.1 (vercel)"

  init(configuration: VercelConfiguration) throws {
    self.configuration = configuration
    var url = configuration.apiURL.trimmingASCIIWhitespace()
    while url.hasSuffix("/") { url.removeLast() }
    guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
      scheme == "http" || scheme == "https", parsed.host?.isEmpty == false,
      parsed.query == nil
    else {
      throw RemoteError(
        errno: EINVAL, "invalid API URL '\(configuration.apiURL)': expected http(s)://HOST[/PATH]")
    }
    apiURL = url
    guard !configuration.token.isEmpty,
      !configuration.token.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
    else {
      throw RemoteError(errno: EINVAL, "the Vercel token is empty or holds control characters")
    }
    teamQuery = configuration.teamID.map { "teamId=" + Self.encode($0) } ?? ""
    http = try RetryingHTTPClient(
      settings: TransferSettings(
        connectTimeout: configuration.connectTimeout, lowSpeedTime: configuration.lowSpeedTime,
        lowSpeedLimit: 1, userAgent: Self.userAgent, caFile: configuration.caFile),
      headers: ["Authorization: Bearer \(configuration.token)"],
      policy: .init(
        delays: configuration.retryDelays, longestRetryAfter: configuration.longestRetryAfter,
        retriedStatuses: [500, 502, 503, 504]),
      server: url)
  }

  var transferThread: any TaskExecutor { http.loop }
  func shutdown() { http.loop.shutdown() }
  func shutdownWithoutBlocking() async { await http.loop.shutdownWithoutBlocking() }

  // MARK: URLs

  static func encode(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
  }

  /// `route` with `?teamId=` and `extra` query items.
  private func url(_ route: String, _ extra: [(String, String)] = []) -> String {
    let items = (teamQuery.isEmpty ? [] : [teamQuery]) + extra.map { "\($0)=\(Self.encode($1))" }
    return route + (items.isEmpty ? "" : "?" + items.joined(separator: "&"))
  }

  /// A route of the current session, e.g. `fs/read` or `cmd/ID/stdin`.
  func sessionURL(_ route: String, _ extra: [(String, String)] = []) -> String {
    url((sessionBase.withLock { $0 } ?? apiURL + "/v2/sandboxes/sessions/-/") + route, extra)
  }

  // MARK: the control plane

  private struct Lookup: Decodable {
    struct Sandbox: Decodable {
      var currentSessionId: String?
      var status: String?
    }
    struct Session: Decodable {
      var id: String
      var status: String?
    }
    var sandbox: Sandbox?
    var session: Session?
  }

  /// `GET /v2/sandboxes/{name}` (resuming a stopped sandbox, as the SDK's `get` does): the
  /// session every later call goes to. Returns its id.
  @discardableResult
  func lookUpSession() async throws -> String {
    let name = configuration.sandboxName
    let context = "look up the sandbox '\(name)'"
    var query = [("resume", "true")]
    if let project = configuration.projectID { query.insert(("projectId", project), at: 0) }
    let route = url(apiURL + "/v2/sandboxes/" + Self.encode(name), query)
    let response = try await send(idempotent: true) {
      HTTPRequest(
        method: .get, url: route, headers: ["Accept: application/json"],
        deadline: self.configuration.requestTimeout)
    }
    if response.status == 401 || response.status == 403 {
      let detail = error(status: response.status, body: response.body, context: context)
      throw RemoteError(
        errno: EACCES,
        "\(context): Vercel refused the token (\(response.status)); check VERCEL_TOKEN or --token-file, and the team (VERCEL_TEAM_ID) [\(detail.message)]",
        kind: .failure)
    }
    try check(response, context: context)
    guard let lookup = try? JSONDecoder().decode(Lookup.self, from: Data(response.body)),
      let id = lookup.session?.id ?? lookup.sandbox?.currentSessionId
    else {
      throw RemoteError(errno: EIO, "\(context): the answer names no session")
    }
    let status = lookup.session?.status ?? lookup.sandbox?.status ?? "running"
    guard status == "running" || status == "pending" else {
      throw RemoteError(errno: EIO, "\(context): the sandbox is \(status), not running")
    }
    sessionBase.withLock { $0 = apiURL + "/v2/sandboxes/sessions/" + Self.encode(id) + "/" }
    return id
  }

  // MARK: requests

  /// A JSON POST of a session route, answered with JSON (or NDJSON); errors thrown.
  func postJSON(
    _ route: String, _ body: some Encodable, idempotent: Bool, deadline: Double? = nil,
    limit: Int = 64 << 20, context: String
  ) async throws -> HTTPResponse {
    let bytes = try Array(Self.encoder.encode(body))
    let target = sessionURL(route)
    let response = try await send(idempotent: idempotent) {
      HTTPRequest(
        method: .post, url: target,
        headers: ["Content-Type: application/json", "Accept: application/json"],
        body: .bytes(bytes), sink: .memory(expected: 0, limit: limit),
        deadline: deadline ?? self.configuration.requestTimeout)
    }
    try check(response, context: context)
    return response
  }

  /// A GET of a session route; errors thrown.
  func get(
    _ route: String, _ query: [(String, String)] = [], deadline: Double? = nil, context: String
  )
    async throws -> HTTPResponse
  {
    let target = sessionURL(route, query)
    let response = try await send(idempotent: true) {
      HTTPRequest(
        method: .get, url: target, headers: ["Accept: application/json"],
        deadline: deadline ?? self.configuration.requestTimeout)
    }
    try check(response, context: context)
    return response
  }

  static var encoder: JSONEncoder { RetryingHTTPClient.jsonEncoder }

  /// Sends the request `make` builds, retrying as the SDK does: on 429 (unless `Retry-After`
  /// asks for more than 20 s), 5xx and network errors, twice.
  func send(idempotent: Bool, _ make: () throws -> HTTPRequest) async throws -> HTTPResponse {
    try await http.send(idempotent: idempotent, make)
  }

  /// A request's answer streamed into a local file, checked against `expectedSize`.
  func download(
    to localPath: String, expectedSize: UInt64, context: String,
    _ make: () throws -> HTTPRequest
  ) async throws -> UInt64 {
    try await http.download(
      to: localPath, expectedSize: expectedSize, context: context,
      check: { try self.check($0, context: context) }, make)
  }

  // MARK: errors

  /// Throws the error of an exchange that did not end in a 2xx answer.
  func check(_ response: HTTPResponse, context: String) throws {
    try http.check(response, context: context) { error(status: $0, body: $1, context: context) }
  }

  private struct ErrorBody: Decodable {
    struct Detail: Decodable {
      var code: String?
      var message: String?
    }
    var error: Detail?
  }

  /// Vercel's `{error:{code,message}}` as the errno Linux would give.
  func error(status: Int, body: [UInt8], context: String) -> RemoteError {
    let detail = (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.error
    let code = detail?.code ?? ""
    let message = detail?.message ?? String(decoding: body.prefix(300), as: UTF8.self)
    let said = "\(context): \(status) \(code.isEmpty ? "" : code + ": ")\(message)"
    switch (status, code) {
    case (410, _), (_, "sandbox_stopped"):
      return RemoteError(
        errno: EIO,
        "\(context): the sandbox '\(configuration.sandboxName)' is stopped (410 sandbox_stopped); resume it and mount again",
        kind: .failure)
    case (401, _), (403, "unauthorized"), (403, "invalid_token"):
      return RemoteError(
        errno: EACCES,
        "\(context): Vercel refused the token (\(status) \(code)); check VERCEL_TOKEN or --token-file",
        kind: .failure)
    case (403, _):
      return RemoteError(
        errno: EACCES,
        "\(context): forbidden (\(status) \(code): \(message)); check the token's team (VERCEL_TEAM_ID)"
      )
    case (_, "not_found"), (_, "path_not_found"), (_, "file_not_found"), (_, "ENOENT"):
      return RemoteError(errno: ENOENT, said)
    case (_, "sandbox_not_found"):
      return RemoteError(
        errno: ENOENT, "\(context): no sandbox '\(configuration.sandboxName)' (\(message))")
    case (_, "is_a_directory"): return RemoteError(errno: EISDIR, said)
    case (_, "not_a_directory"): return RemoteError(errno: ENOTDIR, said)
    case (_, "file_exists"): return RemoteError(errno: EEXIST, said)
    case (507, _), (_, "no_space"): return RemoteError(errno: ENOSPC, said)
    case (413, _): return RemoteError(errno: EFBIG, said)
    case (404, _): return RemoteError(errno: ENOENT, said)
    default: return RemoteError(errno: EIO, said, kind: .failure)
    }
  }
}
