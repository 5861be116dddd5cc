import Backend

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

/// An error answer, told apart by its `code` (protocol doc §1.5): Connect errors carry a string
/// code, envd's own HTTP errors and the proxies' carry an integer one.
enum EnvdErrorBody: Equatable {
  case connect(code: String, message: String)
  case http(code: Int, message: String)
  /// Not JSON, or JSON without a code (a proxy's HTML page, a text/plain 416…).
  case opaque(text: String)

  init(_ body: [UInt8]) {
    struct Shape: Decodable {
      enum Code: Decodable {
        case string(String), integer(Int)
        init(from decoder: any Decoder) throws {
          let container = try decoder.singleValueContainer()
          if let text = try? container.decode(String.self) {
            self = .string(text)
          } else {
            self = .integer(try container.decode(Int.self))
          }
        }
      }
      var code: Code?
      var message: String?
    }
    let text = String(decoding: body.prefix(512), as: UTF8.self)
    guard let shape = try? JSONDecoder().decode(Shape.self, from: Data(body)), let code = shape.code
    else {
      self = .opaque(text: text)
      return
    }
    switch code {
    case .string(let name): self = .connect(code: name, message: shape.message ?? "")
    case .integer(let number): self = .http(code: number, message: shape.message ?? "")
    }
  }

  var message: String {
    switch self {
    case .connect(_, let message), .http(_, let message): message
    case .opaque(let text): text
    }
  }
}

/// envd answers → errno (protocol doc §8).
enum EnvdErrorMapping {
  /// The errno for an error answer with HTTP `status`.
  static func errno(status: Int, body: EnvdErrorBody) -> Int32 {
    switch body {
    case .connect(let code, let message):
      return errno(connectCode: code, message: message)
    case .http(_, let message):
      return errno(httpStatus: status, message: message)
    case .opaque:
      // An HTML or text page says nothing reliable: go by the status alone.
      return errno(httpStatus: status, message: nil)
    }
  }

  static func errno(connectCode code: String, message: String) -> Int32 {
    switch code {
    case "not_found": return ENOENT
    case "already_exists": return EEXIST
    case "unauthenticated", "permission_denied": return EACCES
    case "unavailable", "deadline_exceeded": return EIO
    case "canceled": return EINTR
    case "unimplemented": return EOPNOTSUPP
    case "resource_exhausted": return errno(describedBy: message) ?? EAGAIN
    case "aborted": return errno(describedBy: message) ?? EAGAIN
    case "invalid_argument", "failed_precondition", "out_of_range":
      return errno(describedBy: message) ?? EINVAL
    default:  // internal, unknown, data_loss and codes newer than this client
      return errno(describedBy: message) ?? EIO
    }
  }

  static func errno(httpStatus status: Int, message: String?) -> Int32 {
    switch status {
    case 401, 403: return EACCES
    case 404: return ENOENT
    case 409, 429: return EAGAIN  // the proxy: sandbox pausing/resuming, or too many connections
    case 507: return ENOSPC
    case 502, 503, 504: return EIO  // sandbox gone or paused
    case 400: return message.flatMap(errno(describedBy:)) ?? EINVAL
    default: return message.flatMap(errno(describedBy:)) ?? EIO
    }
  }

  /// envd has no errno field; its `internal` and 500 messages embed Go's errno text.
  static func errno(describedBy message: String) -> Int32? {
    ErrnoText.errno(describedBy: message)
  }

  /// A RemoteError for an error answer: `context` names the operation and path.
  static func remoteError(status: Int, body: [UInt8], context: String) -> RemoteError {
    let parsed = EnvdErrorBody(body)
    let number = errno(status: status, body: parsed)
    let detail: String
    switch parsed {
    case .connect(let code, let message): detail = "\(message) [\(code)]"
    case .http(_, let message): detail = "\(message) [HTTP \(status)]"
    case .opaque(let text):
      let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
      detail = "HTTP \(status)" + (line.isEmpty ? "" : ": \(line.prefix(200))")
    }
    return RemoteError(errno: number, "\(context): \(detail)")
  }
}
