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
