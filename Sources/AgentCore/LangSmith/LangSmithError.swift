import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// LangSmith's error answer, `{"detail":{"error":"<type>","message":"…"}}`. The SDK maps the
/// type (`FileNotFound`, `ReadError`, `WriteError`, `CommandError`, …) and the status to its
/// exception classes, so both follow the service's.
struct LangSmithError: VendorError, Sendable {
  var status: Int
  var type: String
  var message: String
  /// Extra headers (416's `Content-Range`).
  var headers: HTTPFields = [:]

  init(_ status: Int, _ type: String, _ message: String) {
    self.status = status
    self.type = type
    self.message = message
  }

  static func badRequest(_ message: String) -> LangSmithError {
    .init(400, "InvalidRequest", message)
  }
  static func notFound(_ path: String) -> LangSmithError {
    .init(404, "FileNotFound", "file '\(path)' not found")
  }

  /// A failed file system call while reading (`ReadError`) or writing (`WriteError`).
  static func from(_ error: SystemError, path: String, writing: Bool = false) -> LangSmithError {
    switch error.code {
    case ENOENT, ENOTDIR: .notFound(path)
    case EACCES, EPERM: .init(403, "PermissionDenied", "\(error)")
    default: .init(500, writing ? "WriteError" : "ReadError", "\(error)")
    }
  }

  var response: Response {
    let body = langSmithEncode(["detail": ["error": type, "message": message]])
    var response = Response.json(body, status: .init(code: status))
    for field in headers { response.headers[field.name] = field.value }
    return response
  }
}

func langSmithEncode(_ object: Any) -> Data {
  (try? JSONSerialization.data(
    withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    ?? Data("{}".utf8)
}

func langSmithJSON(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
  .json(langSmithEncode(object), status: status)
}

/// JSON bodies are small; anything else is a 400 in LangSmith's shape.
func decodeLangSmithBody<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
  let body: ByteBuffer
  do {
    body = try await request.body.collect(upTo: 4 << 20)
  } catch is NIOTooManyBytesError {
    throw LangSmithError(413, "InvalidRequest", "the request body is too large")
  } catch {
    throw LangSmithError(400, "InvalidRequest", "the request body could not be read: \(error)")
  }
  do {
    return try JSONDecoder().decode(T.self, from: Data(buffer: body))
  } catch {
    throw LangSmithError(422, "ValidationError", "invalid request body: \(error)")
  }
}

/// `X-Api-Key`: with no token configured any key (or none) is accepted; else a missing or wrong
/// key is 401.
struct LangSmithAuthMiddleware: RouterMiddleware {
  typealias Context = AgentRequestContext
  let token: AccessToken?

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    guard let token else { return try await next(request, context) }
    guard token.matches(request.headers[langSmithKeyHeader]) else {
      context.logger.warning(
        "request without a valid API key: \(request.method) \(request.uri.path)")
      throw LangSmithError(401, "Unauthorized", "invalid or missing X-Api-Key")
    }
    return try await next(request, context)
  }
}

let langSmithKeyHeader = HTTPField.Name("X-Api-Key")!

extension LangSmithError {
  static let noRouteCode = "NotFound"
  static let invalidRequestCode = "InvalidRequest"
  static let internalCode = "InternalError"
}
