import Hummingbird

/// A vendor protocol's error answer (Vercel's `{error:{code,message}}`, LangSmith's
/// `{detail:{error,message}}`), with the codes it uses for what every route can fail with.
protocol VendorError: Error {
  init(_ status: Int, _ code: String, _ message: String)
  var response: Response { get }
  static var noRouteCode: String { get }
  static var invalidRequestCode: String { get }
  static var internalCode: String { get }
}

/// Turns every failure into the vendor's error body; a path no route takes is a 404.
struct VendorErrorMiddleware<Failure: VendorError>: RouterMiddleware {
  typealias Context = AgentRequestContext

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    do {
      return try await next(request, context)
    } catch let error as Failure {
      return error.response
    } catch let error as HTTPError {
      if error.status == .notFound {
        return Failure(
          404, Failure.noRouteCode, "no route for \(request.method) \(request.uri.path)"
        ).response
      }
      return Failure(
        error.status.code, Failure.invalidRequestCode, error.body ?? "\(error.status)"
      ).response
    } catch {
      context.logger.warning("\(request.method) \(request.uri.path) failed: \(error)")
      return Failure(500, Failure.internalCode, "\(error)").response
    }
  }
}
