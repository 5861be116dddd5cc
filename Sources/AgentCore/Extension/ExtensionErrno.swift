import Glibc

/// A failure of an extension operation, carrying the exact errno. On the wire it is a Connect
/// error whose message starts with the errno's name: `ENOENT: no such file or directory: /a`.
struct ErrnoError: Error, Sendable, Equatable, CustomStringConvertible {
  var code: Int32
  var detail: String

  init(_ code: Int32, _ detail: String = "") {
    self.code = code
    self.detail = detail
  }

  init(_ error: SystemError) {
    self.init(error.code, error.path)
  }

  var description: String {
    let head = "\(LinuxExtras.errorName(code)): \(SystemError.reason(code))"
    return detail.isEmpty ? head : "\(head): \(detail)"
  }

  var connectError: ConnectError { ConnectError(Self.connectCode(code), description) }

  /// A coarse hint for generic Connect clients; the errno name in the message is what counts.
  static func connectCode(_ code: Int32) -> ConnectCode {
    switch code {
    case ENOENT: .notFound
    case EEXIST: .alreadyExists
    case EACCES, EPERM: .permissionDenied
    case EINVAL, ENAMETOOLONG, EBADF: .invalidArgument
    case ENOSPC, EDQUOT, EFBIG, EMLINK: .resourceExhausted
    case EOPNOTSUPP, ENOSYS: .unimplemented
    case EIO: .internal
    default: .failedPrecondition
    }
  }
}

/// Throws the current errno when a system call returned -1.
@inline(__always)
func checked(_ result: Int32, _ detail: @autoclosure () -> String) throws(ErrnoError) {
  guard result < 0 else { return }
  let code = errno  // Before building the detail text, which may touch errno.
  throw ErrnoError(code, detail())
}
