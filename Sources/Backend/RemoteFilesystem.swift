#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

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
  /// Atomic where the backend can: a cut upload leaves the old content. Returns the file's new
  /// attributes (and its directory's) when the server tells them.
  @discardableResult
  func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState?

  /// Writes `ranges` of the local file at `localPath` into the existing remote file at the same
  /// offsets, in place: first a truncate to `truncateFirst` when given, then the ranges, and
  /// the file ends up `size` bytes long. Returns the new attributes when the server tells them.
  /// EOPNOTSUPP when this backend cannot do it cheaply: the caller uploads the whole file.
  func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes?

  /// Creates one directory. EEXIST if anything is there, ENOENT if the parent is missing.
  func makeDirectory(_ path: String, mode: UInt32) async throws

  /// Removes a non-directory. ENOENT if missing, EISDIR if it is a directory. Returns the
  /// parent's new attributes when the server tells them.
  @discardableResult
  func removeFile(_ path: String) async throws -> RemoteAttributes?

  /// Removes an empty directory. ENOENT, ENOTDIR, ENOTEMPTY as rmdir(2). Returns the parent's
  /// new attributes when the server tells them.
  @discardableResult
  func removeDirectory(_ path: String) async throws -> RemoteAttributes?

  /// rename(2): replaces an existing destination atomically. ENOENT if the source or the
  /// destination's parent is missing; EISDIR, ENOTDIR, ENOTEMPTY as Linux gives them.
  func rename(from source: String, to destination: String) async throws

  /// Space on the remote filesystem.
  func filesystemStatistics() async throws -> RemoteFilesystemStatistics

  // MARK: full POSIX metadata (issue 4). Defaults below throw EOPNOTSUPP or build on the above.

  /// What this backend supports; known after it connected.
  func capabilities() async -> RemoteCapabilities

  /// chmod/chown/truncate/utimensat of the entry itself (a symlink is not followed), applied
  /// in the order size, owner, mode, times, so a chown does not clear a requested setuid and
  /// explicit times win over truncation's. Returns the new attributes. ENOENT; EPERM for a
  /// chown the remote user may not do; EOPNOTSUPP for a mode on a symlink; EISDIR for a size on
  /// a directory, EINVAL on another non-regular file. Not atomic: earlier steps stay on failure.
  func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes

  /// Creates a regular file with exactly `mode` (07777, the caller applied its umask).
  /// `exclusive`: O_CREAT|O_EXCL, EEXIST if anything is there (also a dangling symlink). Not
  /// exclusive: an existing regular file is left as it is and its attributes returned (EISDIR
  /// for a directory). ENOENT/ENOTDIR if the parent is missing or no directory.
  func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws -> RemoteEntryState

  /// mkdir(2) with exactly `mode` (07777). EEXIST, ENOENT as `makeDirectory`.
  func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState

  /// mknod(2): `mode` holds the type (S_IFIFO, S_IFREG, S_IFSOCK, S_IFBLK, S_IFCHR) and 07777.
  /// A device the backend may not make: EPERM; a type it cannot make: EOPNOTSUPP. EEXIST, ENOENT.
  func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws -> RemoteEntryState

  /// symlink(2): `path` holding exactly `target`. EEXIST, ENOENT.
  func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState

  /// readlink(2): the exact link text. EINVAL if `path` is no symlink, ENOENT.
  func readLink(_ path: String) async throws -> String

  /// link(2): `destination` becomes another name of `source`'s inode (a symlink source is
  /// linked, not followed). Returns the inode's attributes. EEXIST, ENOENT, EPERM for a
  /// directory, EXDEV; EOPNOTSUPP (or EPERM) where the backend has no hard links.
  func link(from source: String, to destination: String) async throws -> RemoteEntryState

  /// renameat2(2). Without flags as `rename(from:to:)`. `.noReplace`: EEXIST if the destination
  /// exists. `.exchange`: both must exist (ENOENT). A backend that cannot honour a flag throws
  /// EINVAL, as a Linux filesystem without support does (callers then fall back). Returns what
  /// the server told of the moved entry and the directories.
  @discardableResult
  func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange

  /// fsync(2) of the remote file or directory. A backend that cannot sync returns.
  func synchronize(_ path: String, dataOnly: Bool) async throws

  /// fsync(2) of a remote directory. A layer that knows its entries did not change since its
  /// last sync may skip the round trip; by default, `synchronize`.
  func synchronizeDirectory(_ path: String) async throws

  /// Several changes in one round trip (`RemoteBatch.swift`); EOPNOTSUPP without.
  func applyBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]

  /// A batch whose changes are made as different callers (`callers[i]` for `changes[i]`).
  func applyBatch(_ changes: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
}

extension RemoteFilesystem {
  public func capabilities() async -> RemoteCapabilities { RemoteCapabilities() }

  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    throw RemoteError(errno: EOPNOTSUPP, "writes of ranges of \(path) are not supported")
  }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    throw RemoteError(errno: EOPNOTSUPP, "setattr of \(path) is not supported")
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    if let existing = try? await attributes(of: path) {
      if exclusive { throw RemoteError(errno: EEXIST, "\(path) exists") }
      guard existing.type != .directory else {
        throw RemoteError(errno: EISDIR, "\(path) is a directory")
      }
      return RemoteEntryState(existing)
    }
    try await upload(path, from: nil)
    return RemoteEntryState(try await attributes(of: path))
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    try await makeDirectory(path, mode: mode)
    return RemoteEntryState(try await attributes(of: path))
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    throw RemoteError(errno: EOPNOTSUPP, "mknod of \(path) is not supported")
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    throw RemoteError(errno: EOPNOTSUPP, "symlink \(path) is not supported")
  }

  public func readLink(_ path: String) async throws -> String {
    throw RemoteError(errno: EOPNOTSUPP, "readlink of \(path) is not supported")
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    throw RemoteError(errno: EOPNOTSUPP, "link \(destination) is not supported")
  }

  @discardableResult
  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    guard flags.isEmpty else {
      throw RemoteError(errno: EINVAL, "rename flags \(flags.rawValue) are not supported")
    }
    try await rename(from: source, to: destination)
    return RemoteNameChange()
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {}

  public func synchronizeDirectory(_ path: String) async throws {
    try await synchronize(path, dataOnly: false)
  }
}
/// An error carrying the errno the kernel should see.
public struct RemoteError: Error, CustomStringConvertible, Sendable, Equatable {
  public var errno: Int32
  public var message: String
  /// Whether something failed, or the sandbox just said no; a log's level follows it.
  public var kind: Kind

  public enum Kind: Sendable, Equatable {
    /// The sandbox's ordinary POSIX answer (ENOENT on a lookup, EEXIST, ENOTEMPTY, EACCES):
    /// nothing is wrong with the mount.
    case answer
    /// The sandbox, or the way to it, failed: unreachable, timed out, a server error, a reply
    /// not understood.
    case failure
  }

  /// Without `kind`, the errno decides: EIO and the network's errnos are failures, every other
  /// errno is an answer. This is the only place that guesses from an errno; a maker that knows
  /// better (a server error mapped to EINVAL) says so.
  public init(errno: Int32, _ message: String, kind: Kind? = nil) {
    self.errno = errno
    self.message = message
    self.kind = kind ?? (Self.failureErrnos.contains(errno) ? .failure : .answer)
  }

  static let failureErrnos: Set<Int32> = [
    EIO, ETIMEDOUT, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH, ENOTCONN, EPROTO,
  ]

  public var description: String { "\(message) (errno \(errno))" }
}

/// `read`'s truncation check for a backend that fetches a range: fewer bytes than
/// `min(length, expectedSize - offset)` (the file shrank since it was stat'ed, or the answer
/// broke off) is fetched once more, then EIO; a short answer is never returned.
public func checkedRangeRead(
  context: String, offset: UInt64, length: Int, expectedSize: UInt64,
  fetch: () async throws -> [UInt8]
) async throws -> [UInt8] {
  let wanted =
    expectedSize == 0 || offset >= expectedSize
    ? nil : min(UInt64(length), expectedSize - offset)
  var bytes = try await fetch()
  if let wanted, UInt64(bytes.count) < wanted {
    bytes = try await fetch()
    if UInt64(bytes.count) < wanted {
      throw RemoteError(
        errno: EIO, "\(context): \(bytes.count) bytes arrived, \(wanted) were expected")
    }
  }
  return bytes
}
