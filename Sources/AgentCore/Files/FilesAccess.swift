import HTTPTypes
import Hummingbird

/// The checks envd runs first on `GET`/`POST /files`: the token or a signature, then the user.
struct FilesAccess {
  let services: AgentServices

  /// Token in the header (or a URL signature, which this agent does not verify).
  func authorize(_ request: Request, query: QueryParameters) throws(EnvdHTTPError) {
    guard let token = services.accessToken else { return }
    if let header = request.headers[accessTokenHeader], !header.isEmpty {
      guard token.matches(header) else {
        throw EnvdHTTPError(status: 401, "access token present in header but does not match")
      }
      return
    }
    guard query["signature"] != nil else {
      throw EnvdHTTPError(status: 401, "missing signature query parameter")
    }
    // Signed URLs need SHA-256 of the token; the agent does not implement them and refuses all.
    throw EnvdHTTPError(status: 401, "invalid signature")
  }

  /// oapi-codegen rejects a non-integer `signature_expiration` before the handler runs.
  static func malformedExpiration(_ query: QueryParameters) -> Response? {
    guard let value = query["signature_expiration"], Int(value) == nil else { return nil }
    return .plainText(
      "Invalid format for parameter signature_expiration: error binding string parameter: strconv.ParseInt: parsing \"\(value)\": invalid syntax",
      status: .badRequest)
  }
}
