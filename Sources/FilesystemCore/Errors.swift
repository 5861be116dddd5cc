import Backend
import Glibc

/// Errors the core raises itself; they carry the errno the kernel should see, as backend errors do.
enum FilesystemError {
  static func errno(_ code: Int32, _ message: String) -> RemoteError {
    RemoteError(errno: code, message)
  }

  static func staleInode(_ inode: UInt64) -> RemoteError {
    RemoteError(errno: ESTALE, "inode \(inode) is not known")
  }

  static let readOnly = RemoteError(errno: EROFS, "mounted read-only")
}

/// The errno the kernel sees for an error: a `RemoteError`'s own, EINTR for a cancelled task,
/// EIO for anything else.
public func errnoCode(for error: any Error) -> Int32 {
  switch error {
  case let remote as RemoteError: remote.errno
  case is CancellationError: EINTR
  default: EIO
  }
}

/// Whether `error` is an ordinary POSIX outcome (ENOENT, EEXIST, …) rather than a failure worth
/// a warning.
public func isOrdinaryOutcome(_ error: any Error) -> Bool {
  guard let remote = error as? RemoteError else { return false }
  return remote.errno != EIO
}
