import Backend

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Extension errors carry the errno name as the first word of `message`
/// (docs/agent-extension.md §3): "ENOENT: no such file or directory: /a".
enum ExtensionErrno {
  static func remoteError(status: Int, body: [UInt8], context: String) -> RemoteError {
    let parsed = EnvdErrorBody(body)
    switch parsed {
    case .connect(let code, let message):
      if let number = errno(prefixOf: message) {
        return RemoteError(errno: number, "\(context): \(message)")
      }
      // No errno prefix: the Connect layer refused the call before the method ran.
      let number: Int32 =
        switch code {
        case "invalid_argument", "resource_exhausted": EINVAL
        case "unauthenticated", "permission_denied": EACCES
        default: EIO
        }
      return RemoteError(errno: number, "\(context): \(message) [\(code)]")
    case .http(_, let message) where status == 401:
      return RemoteError(errno: EACCES, "\(context): \(message) [HTTP 401]", kind: .failure)
    default:
      // A 404 page here means the extension went away (the agent restarted with --envd-compat).
      let error = EnvdErrorMapping.remoteError(status: status, body: body, context: context)
      return status == 404 ? RemoteError(errno: EIO, error.message) : error
    }
  }

  /// The errno named before the first `:` of `message`, if it is one this client knows.
  static func errno(prefixOf message: String) -> Int32? {
    guard let colon = message.firstIndex(of: ":") else { return nil }
    return numbers[String(message[..<colon])]
  }

  static let numbers: [String: Int32] = [
    "EPERM": EPERM, "ENOENT": ENOENT, "ESRCH": ESRCH, "EINTR": EINTR, "EIO": EIO, "ENXIO": ENXIO,
    "E2BIG": E2BIG, "EBADF": EBADF, "EAGAIN": EAGAIN, "ENOMEM": ENOMEM, "EACCES": EACCES,
    "EFAULT": EFAULT, "EBUSY": EBUSY, "EEXIST": EEXIST, "EXDEV": EXDEV, "ENODEV": ENODEV,
    "ENOTDIR": ENOTDIR, "EISDIR": EISDIR, "EINVAL": EINVAL, "ENFILE": ENFILE, "EMFILE": EMFILE,
    "ENOTTY": ENOTTY, "ETXTBSY": ETXTBSY, "EFBIG": EFBIG, "ENOSPC": ENOSPC, "ESPIPE": ESPIPE,
    "EROFS": EROFS, "EMLINK": EMLINK, "EPIPE": EPIPE, "ERANGE": ERANGE,
    "ENAMETOOLONG": ENAMETOOLONG, "ENOSYS": ENOSYS, "ENOTEMPTY": ENOTEMPTY, "ELOOP": ELOOP,
    "ENODATA": ENODATA, "EOVERFLOW": EOVERFLOW, "EOPNOTSUPP": EOPNOTSUPP, "ENOTSUP": ENOTSUP,
    "EDQUOT": EDQUOT, "ESTALE": ESTALE, "ECANCELED": ECANCELED, "EILSEQ": EILSEQ,
    "ETIMEDOUT": ETIMEDOUT, "ENOTCONN": ENOTCONN, "EWOULDBLOCK": EWOULDBLOCK,
  ]
}
