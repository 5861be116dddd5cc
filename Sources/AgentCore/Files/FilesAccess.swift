import Foundation
import HTTPTypes
import Hummingbird

/// The checks envd runs first on `GET`/`POST /files`: the token or a signature, then the user.
struct FilesAccess {
  let services: AgentServices

  /// envd's signing operations: `read` for `GET /files`, `write` for `POST /files`.
  enum Operation: String {
    case read
    case write
  }

  /// envd's `validateSigning`: a token in the header wins; else the URL must carry a signature
  /// over path, operation, username and token (and the expiry, if given), checked before expiry.
  func authorize(_ request: Request, query: QueryParameters, operation: Operation)
    throws(EnvdHTTPError)
  {
    guard let token = services.accessToken else { return }
    if let header = request.headers[accessTokenHeader], !header.isEmpty {
      guard token.matches(header) else {
        throw EnvdHTTPError(status: 401, "access token present in header but does not match")
      }
      return
    }
    guard let signature = query["signature"] else {
      throw EnvdHTTPError(status: 401, "missing signature query parameter")
    }
    // `malformedExpiration` already refused a value that is not an integer.
    let expiration = query["signature_expiration"].flatMap { Int($0) }
    let expected = token.signature(
      path: query["path"] ?? "", operation: operation.rawValue, username: query["username"] ?? "",
      expiration: expiration)
    guard AccessToken.constantTimeEqual(Array(expected.utf8), Array(signature.utf8)) else {
      throw EnvdHTTPError(status: 401, "invalid signature")
    }
    if let expiration, expiration < Int(Date().timeIntervalSince1970) {
      throw EnvdHTTPError(status: 401, "signature is already expired")
    }
  }

  /// oapi-codegen rejects a non-integer `signature_expiration` before the handler runs.
  static func malformedExpiration(_ query: QueryParameters) -> Response? {
    guard let value = query["signature_expiration"], Int(value) == nil else { return nil }
    // Go tells digits too many for an int64 from text that is no number.
    let digits = value.drop { $0 == "+" || $0 == "-" }
    let reason =
      value.count - digits.count <= 1 && !digits.isEmpty && digits.allSatisfy(\.isASCII)
        && digits.allSatisfy(\.isNumber) ? "value out of range" : "invalid syntax"
    return .plainText(
      "Invalid format for parameter signature_expiration: error binding string parameter: strconv.ParseInt: parsing \"\(value)\": \(reason)",
      status: .badRequest)
  }
}
