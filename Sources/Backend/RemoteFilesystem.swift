/// The seam between the filesystem core and a sandbox's file API.
///
/// Operations have POSIX semantics: a backend whose API is looser (envd's `Remove` is recursive
/// and silent, `MakeDir` makes parents) checks first and throws the errno Linux would give.
/// Paths are absolute inside the mounted root, e.g. `/`, `/a/b.txt`, never relative.
public protocol RemoteFilesystem: Sendable {
  /// lstat: a final symlink is described, not followed. Throws ENOENT when missing.
  func attributes(of path: String) async throws -> RemoteAttributes

  /// The entries of a directory, without `.` and `..`. Throws ENOTDIR or ENOENT.
  func listDirectory(_ path: String) async throws -> [RemoteEntry]

  /// Reads `length` bytes at `offset` of a file whose size was `expectedSize` when it was stat'ed
  /// (before this read). Fewer bytes than `min(length, expectedSize - offset)` is truncation:
  /// the backend retries once, then throws EIO. A file that grew is not an error. Reading at or
  /// past the end returns no bytes. `expectedSize == 0` skips the check (pseudo-files).
  func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]

  /// Streams the whole file into the local file at `localPath` (created or truncated), checked
  /// against `expectedSize` as `read` is. Returns the number of bytes written.
  func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws -> UInt64

  /// Replaces the remote file's content with the local file's, streamed, never held whole in
  /// memory. `localPath == nil` writes an empty file. Parents must exist (ENOENT otherwise).
  func upload(_ path: String, from localPath: String?) async throws

  /// Creates one directory. EEXIST if anything is there, ENOENT if the parent is missing.
  func makeDirectory(_ path: String, mode: UInt32) async throws

  /// Removes a non-directory. ENOENT if missing, EISDIR if it is a directory.
  func removeFile(_ path: String) async throws

  /// Removes an empty directory. ENOENT, ENOTDIR, ENOTEMPTY as rmdir(2).
  func removeDirectory(_ path: String) async throws

  /// rename(2): replaces an existing destination atomically. ENOENT if the source or the
  /// destination's parent is missing; EISDIR, ENOTDIR, ENOTEMPTY as Linux gives them.
  func rename(from source: String, to destination: String) async throws

  /// Space on the remote filesystem.
  func filesystemStatistics() async throws -> RemoteFilesystemStatistics
}

/// An error carrying the errno the kernel should see.
public struct RemoteError: Error, CustomStringConvertible, Sendable, Equatable {
  public var errno: Int32
  public var message: String

  public init(errno: Int32, _ message: String) {
    self.errno = errno
    self.message = message
  }

  public var description: String { "\(message) (errno \(errno))" }
}
