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

  /// `GET /v2/sandboxes/{name}` (resuming a stopped sandbox, as the SDK's `get` does, unless
  /// `resume` is false): the session every later call goes to. Returns its id.
  @discardableResult
  func lookUpSession(resume: Bool = true) async throws -> String {
    let name = configuration.sandboxName
    let context = "look up the sandbox '\(name)'"
    var query = resume ? [("resume", "true")] : []
    if let project = configuration.projectID { query.insert(("projectId", project), at: 0) }
    let route = url(apiURL + "/v2/sandboxes/" + Self.encode(name), query)
    let response = try await http.send(idempotent: true) {
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
    try http.check(response, context: context) { error(status: $0, body: $1, context: context) }
    guard let lookup = try? JSONDecoder().decode(Lookup.self, from: Data(response.body)),
      let id = lookup.session?.id ?? lookup.sandbox?.currentSessionId
    else {
      throw RemoteError(errno: EIO, "\(context): the answer names no session")
    }
    let status = lookup.session?.status ?? lookup.sandbox?.status ?? "running"
    guard status == "running" || status == "pending" else {
      throw RemoteError(errno: EIO, "\(context): the sandbox is \(status), not running")
    }
    let session = apiURL + "/v2/sandboxes/sessions/" + Self.encode(id)
    sessionBase.withLock { $0 = session + "/" }
    http.stall.probe(at: url(session))
    return id
  }

  /// A session route answered that the sandbox has no such session.
  private struct SessionLost: Error {}

  /// Runs `call`, whose requests go to the session's routes. A session the sandbox no longer
  /// knows (its API restarted, or the sandbox went on in another session) is looked up again,
  /// without resuming a stopped sandbox, and `call` runs once more in the new one: otherwise
  /// every file would be ENOENT until the mount is made again.
  private func followingSession<T>(context: String, _ call: () async throws -> T) async throws
    -> T
  {
    let before = sessionBase.withLock { $0 }
    do {
      return try await call()
    } catch is SessionLost {
      let now = try? await lookUpSession(resume: false)
      if now != nil && sessionBase.withLock({ $0 }) != before {
        do { return try await call() } catch is SessionLost {}
      }
      throw RemoteError(
        errno: EIO,
        "\(context): the sandbox '\(configuration.sandboxName)' no longer has this session, and no other is running",
        kind: .failure)
    }
  }

  // MARK: requests

  /// A JSON POST of a session route, answered with JSON (or NDJSON); errors thrown.
  func postJSON(
    _ route: String, _ body: some Encodable, idempotent: Bool, deadline: Double? = nil,
    limit: Int = 64 << 20, context: String
  ) async throws -> HTTPResponse {
    let bytes = try Array(Self.encoder.encode(body))
    return try await send(route, idempotent: idempotent, context: context) { target in
      HTTPRequest(
        method: .post, url: target,
        headers: ["Content-Type: application/json", "Accept: application/json"],
        body: .bytes(bytes), sink: .memory(expected: 0, limit: limit),
        deadline: deadline ?? self.configuration.requestTimeout)
    }
  }

  /// A GET of a session route; errors thrown.
  func get(
    _ route: String, _ query: [(String, String)] = [], deadline: Double? = nil, context: String
  )
    async throws -> HTTPResponse
  {
    try await send(route, query, idempotent: true, context: context) { target in
      HTTPRequest(
        method: .get, url: target, headers: ["Accept: application/json"],
        deadline: deadline ?? self.configuration.requestTimeout)
    }
  }

  static var encoder: JSONEncoder { RetryingHTTPClient.jsonEncoder }

  /// Sends the request `make` builds for the session's `route` (its URL given), retrying as
  /// the SDK does: on 429 (unless `Retry-After` asks for more than 20 s), 5xx and network
  /// errors, twice. Errors thrown.
  func send(
    _ route: String, _ query: [(String, String)] = [], idempotent: Bool, context: String,
    _ make: (_ url: String) throws -> HTTPRequest
  ) async throws -> HTTPResponse {
    try await followingSession(context: context) {
      let target = sessionURL(route, query)
      let response = try await http.send(idempotent: idempotent) { try make(target) }
      try check(response, context: context)
      return response
    }
  }

  /// The answer of the session's `route` streamed into a local file, checked against
  /// `expectedSize`.
  func download(
    _ route: String, to localPath: String, expectedSize: UInt64, context: String,
    _ make: (_ url: String) throws -> HTTPRequest
  ) async throws -> UInt64 {
    try await followingSession(context: context) {
      let target = sessionURL(route)
      return try await http.download(
        to: localPath, expectedSize: expectedSize, context: context,
        check: { try self.check($0, context: context) }, { try make(target) })
    }
  }

  // MARK: errors

  /// Throws the error of an exchange with a session route that did not end in a 2xx answer.
  private func check(_ response: HTTPResponse, context: String) throws {
    try http.check(response, context: context) { status, body in
      if status == 404 && Self.code(body) == "sandbox_not_found" { return SessionLost() }
      return error(status: status, body: body, context: context)
    }
  }

  private struct ErrorBody: Decodable {
    struct Detail: Decodable {
      var code: String?
      var message: String?
    }
    var error: Detail?
  }

  private static func code(_ body: [UInt8]) -> String? {
    (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.error?.code
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
