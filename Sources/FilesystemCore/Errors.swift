import Backend
import DataLayer
import Glibc
import Logging

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

/// The errno the kernel sees for an error: a `RemoteError`'s or `LocalError`'s own, EINTR for a
/// cancelled task, EIO for anything else.
public func errnoCode(for error: any Error) -> Int32 {
  switch error {
  case let reported as any ReportedError: reported.errno
  case is CancellationError: EINTR
  default: EIO
  }
}

/// How loudly a failed request logs `error`: as the error says; a cancelled request is routine,
/// an error of unknown origin a warning.
public func logLevel(for error: any Error) -> Logger.Level {
  switch error {
  case let reported as any ReportedError: reported.logLevel
  case is CancellationError: .debug
  default: .warning
  }
}
