#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A failure of this machine's own files (a staging file, the disk cache, the write-back
/// journal, a backend's local side of an upload or download), kept apart from `RemoteError`: a
/// full local disk must not read as a full sandbox.
public struct LocalError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What the kernel answers: the failed call's errno (ENOSPC when the local disk is full).
  public var errno: Int32
  /// The call that failed, e.g. "write".
  public var operation: String
  /// The local file or folder it failed on, e.g. "staging file (fd 7) in /var/tmp".
  public var file: String
  /// What the errno alone does not say; nil: the errno's text.
  public var detail: String?

  public init(errno: Int32, _ operation: String, _ file: String, detail: String? = nil) {
    self.errno = errno
    self.operation = operation
    self.file = file
    self.detail = detail
  }

  public var description: String {
    let reason = detail ?? String(cString: strerror(errno))
    return "local disk: \(operation) of \(file) failed: \(reason) (errno \(errno))"
  }
}
