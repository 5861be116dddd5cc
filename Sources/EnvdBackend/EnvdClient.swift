import Backend
import CCurl
import HTTPTransport
import Synchronization

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

/// envd's HTTP surface: URLs, auth headers, Connect unary calls, and turning curl failures into
/// RemoteErrors. Knows nothing of POSIX semantics; the envd backends add those.
final class EnvdClient: Sendable {
  let baseURL: String
  let remoteRoot: String
  let configuration: EnvdConfiguration
  private let loop: CurlMultiLoop
  /// Watches hold a connection each for as long as they last: on a loop of their own, so they
  /// never take the connections reads and writes need. Made at the first watch.
  private let watchLoop = Mutex<CurlMultiLoop?>(nil)
  private let settings: TransferSettings
  /// X-Access-Token, for every route.
  private let tokenHeaders: [String]
  private let rpcHeaders: [String]
  /// X-Access-Token and, with a configured user, Basic auth: for routes beyond `/files`.
  let authHeaders: [String]
  private let usernameQuery: String
  /// Set while the server is taken as stalled: see `send`.
  private let stall: StallLatch

  static let userAgent = "sandbox-mount/0.1"

  init(configuration: EnvdConfiguration) throws {
    self.configuration = configuration
    baseURL = try Self.validatedBaseURL(configuration.baseURL)
    remoteRoot = try Self.validatedRoot(configuration.remoteRoot)
    for (name, value) in [
      ("connect timeout", configuration.connectTimeout),
      ("low-speed time", configuration.lowSpeedTime),
      ("request timeout", configuration.requestTimeout),
    ] where !(value > 0) {
      throw RemoteError(errno: EINVAL, "the \(name) must be positive, not \(value)")
    }
    for header in configuration.extraHeaders
    where header.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
      throw RemoteError(errno: EINVAL, "the header '\(header)' contains control characters")
    }
    var tokenHeaders = configuration.extraHeaders
    if let token = configuration.accessToken {
      guard !token.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
        throw RemoteError(errno: EINVAL, "the access token contains control characters")
      }
      tokenHeaders.append("X-Access-Token: \(token)")
    }
    var authHeaders = tokenHeaders
    var rpcHeaders =
      tokenHeaders + [
        "Content-Type: application/json", "Connect-Protocol-Version: 1", "Accept: application/json",
      ]
    if let user = configuration.user {
      guard !user.isEmpty, !user.contains(":"), !user.utf8.contains(where: { $0 < 0x20 }) else {
        throw RemoteError(errno: EINVAL, "invalid user name '\(user)'")
      }
      let basic = "Authorization: Basic \(Data((user + ":").utf8).base64EncodedString())"
      rpcHeaders.append(basic)
      authHeaders.append(basic)
      usernameQuery = "&username=" + QueryEncoding.encode(user)
    } else {
      usernameQuery = ""
    }
    self.tokenHeaders = tokenHeaders
    self.rpcHeaders = rpcHeaders
    self.authHeaders = authHeaders
    settings = TransferSettings(
      connectTimeout: configuration.connectTimeout, lowSpeedTime: configuration.lowSpeedTime,
      lowSpeedLimit: configuration.lowSpeedLimit, userAgent: Self.userAgent,
      caFile: configuration.caFile)
    loop = try CurlMultiLoop()
    stall = StallLatch(
      loop: loop, settings: settings, probeURL: baseURL + "/health", probeHeaders: tokenHeaders)
  }

  func shutdown() {
    loop.shutdown()
    watchLoop.withLock { $0 }?.shutdown()
  }

  var transferThread: any TaskExecutor { loop }

  func shutdownWithoutBlocking() async {
    await loop.shutdownWithoutBlocking()
    await watchLoop.withLock { $0 }?.shutdownWithoutBlocking()
  }

  /// A long-lived streaming POST (a watch), on the watch loop.
  func postStream(route: String, _ request: HTTPRequest) async throws -> HTTPResponse {
    var request = request
    request.url = baseURL + route
    request.headers += authHeaders
    let loop = try watchLoop.withLock { loop in
      if let loop { return loop }
      let made = try CurlMultiLoop(maxHostConnections: Self.watchConnections)
      loop = made
      return made
    }
    return try await send(request, on: loop)
  }

  /// More than any mount watches at once (`--watch-limit` is bounded below this).
  static let watchConnections = 512

  // MARK: paths and URLs

  /// The server-side path of a mount path: `remoteRoot` joined with it.
  func protocolPath(_ mountPath: String) -> String {
    if mountPath == "/" || mountPath.isEmpty { return remoteRoot }
    let relative = mountPath.hasPrefix("/") ? mountPath : "/" + mountPath
    return remoteRoot == "/" ? relative : remoteRoot + relative
  }

  func filesURL(_ mountPath: String) -> String {
    baseURL + "/files?path=" + QueryEncoding.encode(protocolPath(mountPath)) + usernameQuery
  }

  /// `POST /files` for a multipart body whose parts name their own paths.
  var multipartFilesURL: String {
    baseURL + "/files" + (usernameQuery.isEmpty ? "" : "?" + usernameQuery.dropFirst())
  }

  // MARK: requests

  /// A GET or POST of `/files`, with the token header added.
  func files(_ request: HTTPRequest) async throws -> HTTPResponse {
    var request = request
    request.headers += tokenHeaders
    return try await send(request)
  }

  /// A plain GET of a route such as `/health` or `/metrics`.
  func get(route: String, deadline: Double? = nil) async throws -> HTTPResponse {
    try await send(
      HTTPRequest(
        method: .get, url: baseURL + route, headers: tokenHeaders + ["Accept: application/json"],
        deadline: deadline ?? configuration.requestTimeout))
  }

  /// A unary call's whole time, retries included: `--io-timeout` (the low-speed time) bounds
  /// what the user waits for a metadata call, not only a stall in a transfer.
  var unaryDeadline: Double { min(configuration.requestTimeout, configuration.lowSpeedTime) }

  /// A Connect unary call whose answer is returned whatever its status.
  func rpcResponse(
    _ method: String, _ message: some Encodable, service: String = "filesystem.Filesystem"
  ) async throws -> HTTPResponse {
    let body: [UInt8]
    if let flat = message as? any JSONObjectEncodable {
      body = flat.jsonBytes
    } else {
      let encoder = JSONEncoder()
      encoder.outputFormatting = .withoutEscapingSlashes
      body = try Array(encoder.encode(message))
    }
    return try await send(
      HTTPRequest(
        method: .post, url: baseURL + "/" + service + "/" + method, headers: rpcHeaders,
        body: .bytes(body), deadline: unaryDeadline))
  }

  /// A POST of any route with the auth headers added (streaming calls, offset writes).
  func post(route: String, _ request: HTTPRequest) async throws -> HTTPResponse {
    var request = request
    request.url = baseURL + route
    request.headers += authHeaders
    return try await send(request)
  }

  /// A Connect unary call: the decoded answer, or the envd error mapped to errno.
  func rpc<Response: Decodable>(
    _ method: String, _ message: some Encodable, as: Response.Type, context: String
  ) async throws -> Response {
    let response = try await rpcResponse(method, message)
    if let failure = transportError(response, context: context) { throw failure }
    guard response.status == 200 else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
    do {
      return try decodeJSON(Response.self, response.body)
    } catch {
      throw RemoteError(errno: EIO, "\(context): undecodable answer from the server: \(error)")
    }
  }

  /// One request. A request that timed out marks the server stalled (`StallLatch`): until
  /// `/health` answers, every request fails at once. Watch streams (`loop` given) neither wait
  /// for nor mark a stall: they re-establish themselves.
  private func send(_ request: HTTPRequest, on loop: CurlMultiLoop? = nil) async throws
    -> HTTPResponse
  {
    let watching = loop != nil
    let loop = loop ?? self.loop
    if !watching { try stall.check(request.url) }
    let transfer: CurlTransfer
    do {
      transfer = try CurlTransfer(request, settings: settings)
    } catch {
      throw RemoteError(errno: EIO, "cannot set up a request to \(request.url): \(error)")
    }
    let response = await loop.perform(transfer)
    if response.cancelled { throw RemoteError(errno: EINTR, "the request was cancelled") }
    if !watching { stall.record(response) }
    return response
  }

  /// The error for an exchange that did not complete (no usable HTTP answer), or nil.
  /// A memory sink's deliberate stop is not an error.
  func transportError(_ response: HTTPResponse, context: String) -> RemoteError? {
    guard response.curlCode != CURLE_OK.rawValue, !response.limitReached else { return nil }
    if let local = response.localFailure { return RemoteError(errno: EIO, "\(context): \(local)") }
    return RemoteError(errno: EIO, "\(context): \(describeFailure(response))")
  }

  /// One line saying why the server could not be reached or the exchange broke off.
  func describeFailure(_ response: HTTPResponse) -> String {
    Self.describeFailure(response, of: baseURL, caFile: configuration.caFile)
  }

  /// The same, for any server (`url`) reached with these CA settings.
  static func describeFailure(_ response: HTTPResponse, of baseURL: String, caFile: String?)
    -> String
  {
    let code = CURLcode(rawValue: response.curlCode)
    switch code {
    case CURLE_COULDNT_RESOLVE_HOST:
      return "cannot resolve the host of \(baseURL) (\(response.curlMessage))"
    case CURLE_COULDNT_CONNECT:
      let reason =
        response.osErrno == ECONNREFUSED
        ? "connection refused" : String(cString: strerror(response.osErrno))
      return
        "cannot connect to \(baseURL): \(response.osErrno != 0 ? reason : response.curlMessage)"
    case CURLE_OPERATION_TIMEDOUT:
      return "no answer from \(baseURL) in time: \(response.curlMessage)"
    case CURLE_PEER_FAILED_VERIFICATION:
      let trusted = caFile.map { "the CA file \($0)" } ?? "the system's CA store"
      let hint = caFile == nil ? "; for a private CA, pass its certificate with --ca-file" : ""
      return
        "the TLS certificate of \(baseURL) is not trusted by \(trusted) (\(response.curlMessage))\(hint)"
    case CURLE_SSL_CACERT_BADFILE:
      return "cannot use the CA file \(caFile ?? ""): \(response.curlMessage)"
    case CURLE_SSL_CONNECT_ERROR:
      return "TLS handshake with \(baseURL) failed: \(response.curlMessage)"
    case CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING:
      return "the connection to \(baseURL) broke: \(response.curlMessage)"
    default:
      return "request to \(baseURL) failed: \(response.curlMessage)"
    }
  }

  // MARK: validation

  private static func validatedBaseURL(_ text: String) throws -> String {
    var trimmed = text.trimmingASCIIWhitespace()
    while trimmed.hasSuffix("/") { trimmed.removeLast() }
    guard let handle = curl_url() else { throw RemoteError(errno: ENOMEM, "curl_url failed") }
    defer { curl_url_cleanup(handle) }
    let parsed = curl_url_set(handle, CURLUPART_URL, trimmed, 0)
    guard parsed == CURLUE_OK else {
      throw RemoteError(
        errno: EINVAL, "invalid URL '\(text)': \(String(cString: curl_url_strerror(parsed)))")
    }
    func part(_ which: CURLUPart) -> String? {
      var value: UnsafeMutablePointer<CChar>?
      guard curl_url_get(handle, which, &value, 0) == CURLUE_OK, let value else { return nil }
      defer { curl_free(value) }
      return String(cString: value)
    }
    let scheme = part(CURLUPART_SCHEME)?.lowercased()
    guard scheme == "http" || scheme == "https" else {
      throw RemoteError(errno: EINVAL, "invalid URL '\(text)': the scheme must be http or https")
    }
    guard let host = part(CURLUPART_HOST), !host.isEmpty else {
      throw RemoteError(errno: EINVAL, "invalid URL '\(text)': no host")
    }
    guard part(CURLUPART_QUERY) == nil, part(CURLUPART_FRAGMENT) == nil else {
      throw RemoteError(errno: EINVAL, "invalid URL '\(text)': no query or fragment allowed")
    }
    return trimmed
  }

  private static func validatedRoot(_ text: String) throws -> String {
    guard text.hasPrefix("/") else {
      throw RemoteError(errno: EINVAL, "the remote root must be an absolute path, not '\(text)'")
    }
    var root = text
    while root.count > 1, root.hasSuffix("/") { root.removeLast() }
    return root
  }
}

func decodeJSON<Value: Decodable>(_ type: Value.Type, _ bytes: [UInt8]) throws -> Value {
  try JSONDecoder().decode(Value.self, from: Data(bytes))
}
