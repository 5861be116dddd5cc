import Foundation
import Hummingbird

/// Vercel's error answer: `{"error":{"code":"…","message":"…"}}` with an HTTP status. The SDK
/// reads `code` (`not_found` is a missing path, 410 a stopped sandbox), so codes are Vercel's own.
struct VercelError: VendorError, Sendable {
  var status: Int
  var code: String
  var message: String
  /// Extra fields inside `error` (the stdin route's `bytesWritten`).
  var extra: [String: Int] = [:]

  init(_ status: Int, _ code: String, _ message: String) {
    self.status = status
    self.code = code
    self.message = message
  }

  static func badRequest(_ message: String) -> VercelError { .init(400, "bad_request", message) }
  static func notFound(_ message: String) -> VercelError { .init(404, "not_found", message) }
  static let stopped = VercelError(410, "sandbox_stopped", "the sandbox is stopped")

  /// A failed file system call: ENOENT is Vercel's `not_found`, the rest a `bad_request` that
  /// names the errno.
  static func from(_ error: SystemError) -> VercelError {
    switch error.code {
    case ENOENT: .notFound("\(error)")
    case EACCES, EPERM: .init(403, "forbidden", "\(error)")
    case ENOTDIR: .init(400, "not_a_directory", "\(error)")
    case EISDIR: .init(400, "is_a_directory", "\(error)")
    case EEXIST: .init(409, "file_exists", "\(error)")
    case ENOSPC, EDQUOT: .init(507, "no_space", "\(error)")
    default: .badRequest("\(error)")
    }
  }

  var response: Response {
    var detail: [String: Any] = ["code": code, "message": message]
    for (key, value) in extra { detail[key] = value }
    let body =
      (try? JSONSerialization.data(
        withJSONObject: ["error": detail], options: [.sortedKeys, .withoutEscapingSlashes]))
      ?? Data()
    return .json(body, status: .init(code: status))
  }
}

extension VercelError {
  static let noRouteCode = "not_found"
  static let invalidRequestCode = "bad_request"
  static let internalCode = "internal_error"
}
