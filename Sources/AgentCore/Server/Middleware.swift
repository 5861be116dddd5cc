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
        return .connectError(ConnectError(.unimplemented, "\(path.dropFirst()) is not implemented"))
      }
      return .plainText("404 page not found", status: .notFound)
    }
  }
}
