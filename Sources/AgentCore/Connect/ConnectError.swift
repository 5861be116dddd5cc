import Foundation

/// Connect protocol error codes, with connect-go's HTTP status mapping (`connectCodeToHTTP`).
public enum ConnectCode: String, Sendable, Codable {
  case canceled
  case unknown
  case invalidArgument = "invalid_argument"
  case deadlineExceeded = "deadline_exceeded"
  case notFound = "not_found"
  case alreadyExists = "already_exists"
  case permissionDenied = "permission_denied"
  case resourceExhausted = "resource_exhausted"
  case failedPrecondition = "failed_precondition"
  case aborted
  case outOfRange = "out_of_range"
  case unimplemented
  case `internal`
  case unavailable
  case dataLoss = "data_loss"
  case unauthenticated

  public var httpStatus: Int {
    switch self {
    case .canceled: 499
    case .unknown, .internal, .dataLoss: 500
    case .invalidArgument, .failedPrecondition, .outOfRange: 400
    case .deadlineExceeded: 504
    case .notFound: 404
    case .alreadyExists, .aborted: 409
    case .permissionDenied: 403
    case .resourceExhausted: 429
    case .unimplemented: 501
    case .unavailable: 503
    case .unauthenticated: 401
    }
  }
}

/// An error a Connect handler returns: unary calls send it as the JSON body with `httpStatus`;
/// streaming calls send it inside the end-stream envelope with HTTP 200.
public struct ConnectError: Error, Sendable, Equatable {
  public var code: ConnectCode
  public var message: String

  public init(_ code: ConnectCode, _ message: String) {
    self.code = code
    self.message = message
  }

  /// `{"code":"not_found","message":"..."}`
  public var jsonBody: Data {
    (try? JSONEncoder().encode(["code": code.rawValue, "message": message])) ?? Data()
  }
}

/// envd's own HTTP error body, `{"code":<int status>,"message":"..."}` plus a newline: used by
/// `/files`, `/health`-adjacent routes, and the auth middleware even on RPC paths.
public struct EnvdHTTPError: Error, Sendable, Equatable {
  public var status: Int
  public var message: String

  public init(status: Int, _ message: String) {
    self.status = status
    self.message = message
  }

  public var jsonBody: Data {
    struct Body: Encodable {
      var code: Int
      var message: String
    }
    var data = (try? JSONEncoder().encode(Body(code: status, message: message))) ?? Data()
    data.append(UInt8(ascii: "\n"))
    return data
  }
}
