import HTTPTypes
import Hummingbird
import Logging

/// One debug line per request, with its Content-Encoding if any (never the query string: it may carry a signature), and a
/// warning for server errors.
struct RequestLogMiddleware: RouterMiddleware {
  typealias Context = AgentRequestContext
  let counters: AgentCounters

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  )
    async throws -> Response
  {
    let start = ContinuousClock.now
    counters.countRequest()
    // A chunked body (no Content-Length) is counted by the route that streams it.
    if let length = request.headers[.contentLength].flatMap({ Int($0) }) {
      counters.countReceived(length)
    }
    let response = try await next(request, context)
    let elapsed = ContinuousClock.now - start
    // The body's encoding shows whether a client compressed its upload.
    let encoding = request.headers[.contentEncoding].map { " encoding=\($0)" } ?? ""
    let line: Logger.Message =
      "\(request.method) \(request.uri.path) \(response.status.code) \(elapsed)\(encoding)"
    if response.status.code >= 500 {
      context.logger.warning(line)
    } else {
      context.logger.debug(line)
    }
    return response
  }
}

/// envd's `WithAuthorization`: with a token configured, every route but `GET /health` and
/// `GET`/`POST /files` needs `X-Access-Token`; the 401 is envd's JSON even on RPC paths.
/// `/files` checks the header (or a signature) itself.
struct AccessTokenMiddleware: RouterMiddleware {
  typealias Context = AgentRequestContext
  let token: AccessToken?

  static let excluded: Set<String> = ["GET/health", "GET/files", "POST/files"]

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  )
    async throws -> Response
  {
    guard let token else { return try await next(request, context) }
    let key = request.method.rawValue + request.uri.path
    if !Self.excluded.contains(key) && !token.matches(request.headers[accessTokenHeader]) {
      context.logger.warning(
        "request without a valid access token: \(request.method) \(request.uri.path)")
      return .envdError(
        EnvdHTTPError(
          status: 401,
          "unauthorized access, please provide a valid access token or method signing if supported")
      )
    }
    return try await next(request, context)
  }
}

let accessTokenHeader = HTTPField.Name("X-Access-Token")!

/// What chi and connect-go answer for requests no route takes: `404 page not found`, 405 for a
/// known path with the wrong method, and `unimplemented` for envd procedures this agent lacks.
struct FallbackMiddleware: RouterMiddleware {
  typealias Context = AgentRequestContext

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  )
    async throws -> Response
  {
    do {
      return try await next(request, context)
    } catch let error as HTTPError where error.status == .notFound {
      let path = request.uri.path
      if let methods = KnownRoutes.http[path], !methods.contains(request.method.rawValue) {
        return Response(status: .methodNotAllowed)
      }
      if KnownRoutes.procedures.contains(path) {
        if request.method != .post {
          return Response(status: .methodNotAllowed, headers: [.allow: "POST"])
        }
        return await Self.unimplemented(path, request: request, context: context)
      }
      return .plainText("404 page not found", status: .notFound)
    }
  }

  /// connect-go's generated `Unimplemented…Handler`, behind the handler its stream type gets: the
  /// codec is checked first (415), a server stream reads its request message before failing,
  /// and a stream's error is its end-stream envelope under HTTP 200.
  private static func unimplemented(
    _ path: String, request: Request, context: Context
  ) async -> Response {
    let procedure = path.dropFirst().replacingOccurrences(of: "/", with: ".")
    let error = ConnectError(.unimplemented, "\(procedure) is not implemented")
    switch KnownRoutes.streaming[path] {
    case .server:
      return await ConnectStreamingCall.respond(to: request, context: context) { _, _, _ in
        throw error
      }
    case .client:
      if let refusal = ConnectStreamingCall.unsupportedMediaType(request) { return refusal }
      // The handler fails before reading a message; the end-stream goes out at once.
      let endStream = ConnectStreamWriter.frame(
        ConnectStreamWriter.endStreamPayload(error), flags: Envelope.endStreamFlag,
        allocator: ByteBufferAllocator())
      return Response(
        status: .ok, headers: [.contentType: ConnectStreamingCall.contentType],
        body: .init(byteBuffer: endStream))
    case nil:
      let media = HeaderParameters(request.headers[.contentType] ?? "").value
      guard media == "application/json" else {
        return Response(
          status: .unsupportedMediaType,
          headers: [HTTPField.Name("Accept-Post")!: "application/json"])
      }
      return .connectError(error)
    }
  }
}
