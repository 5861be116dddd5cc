import Backend
import Glibc

/// Answers the bridge gives on libfuse's own thread, without a task, when the caches already
/// hold them: `ls -l`, `find` and `git status` are mostly these.
extension Filesystem {
  /// Local. What getattr answers when the attributes are cached and fresh and no staging file
  /// is involved; nil: ask `attributes(of:)`.
  public func cachedAttributes(of inode: UInt64) -> Glibc.stat? {
    guard openFiles.staging(of: inode) == nil, let fresh = freshAttributes(of: inode) else {
      return nil
    }
    return shownStat(for: fresh, inode: inode)
  }

  /// Local. A setattr that changes nothing by the fresh attributes held (rsync's lchown to the
  /// owner the file shows, its chmod to the mode it has): the attributes as they are, without a
  /// task. nil: ask `setAttributes`.
  public func setAttributesLocally(of inode: UInt64, changes: AttributeChanges) -> Glibc.stat? {
    guard !configuration.readOnly, changes.size == nil, changes.accessTime == nil,
      changes.modificationTime == nil, let shown = cachedAttributes(of: inode)
    else { return nil }
    if let uid = changes.ownerUID, uid != shown.st_uid || configuration.showRemoteOwners {
      return nil
    }
    if let gid = changes.ownerGID, gid != shown.st_gid || configuration.showRemoteOwners {
      return nil
    }
    if let mode = changes.mode, mode & 0o7777 != UInt32(shown.st_mode) & 0o7777 { return nil }
    return shown
  }

  /// Local. An open whose attributes are fresh; nil: ask `open`.
  public func openLocally(_ inode: UInt64, flags: Int32) throws -> OpenedFile? {
    guard let path = inodes.path(of: inode),
      let attributes = inodes.attributes(of: inode, maxAge: configuration.attributeLifetime)
    else { return nil }
    guard attributes.type != .directory else {
      throw FilesystemError.errno(EISDIR, "\(path) is a directory")
    }
    guard (flags & O_ACCMODE) == O_RDONLY else {
      return try openForWritingLocally(inode, flags: flags, attributes: attributes)
    }
    return openForReading(inode, path: path, attributes: attributes)
  }

  /// Whether the upload a flush or fsync of `handle` would start is small (a one-line append
  /// to a big file): its task may then run where its answer arrives, the transfer thread,
  /// without a hop to the pool. A large one reads and compresses on the pool.
  public func uploadIsSmall(handle: UInt64) -> Bool {
    guard let opened = openFiles.handle(handle), opened.writable else { return true }
    guard let staging = openFiles.staging(of: opened.inode) else { return true }
    let limit: UInt64 = 64 << 10
    return staging.nextUploadIsAtMost(capabilities.offsetWrites ? limit : 0)
  }

  /// Local. flush of a handle that did not write: nothing to upload. False: ask `flush`.
  public func flushLocally(handle: UInt64) -> Bool {
    guard let opened = openFiles.handle(handle) else { return false }
    return !opened.writable
  }

  /// Local. release of a read-only handle, or of a writer whose changes the flush before it
  /// already sent (the usual close: nothing left to upload). False: ask `release`.
  public func releaseLocally(handle: UInt64) -> Bool {
    guard let opened = openFiles.handle(handle) else { return false }
    if opened.writable {
      guard let staging = openFiles.staging(of: opened.inode), !staging.isDirty else {
        return false
      }
    }
    guard openFiles.removeHandle(handle) != nil else { return true }
    reader.release(handle: handle)
    let lastUse = openFiles.endUse(of: opened.inode)
    if opened.writable {
      pageCacheVersions.forget(opened.inode)
      if lastUse { pagesMatchUploadedVersion(opened.inode) }
    }
    return true
  }

  public enum CachedLookup: Sendable {
    case found(Entry)
    case missing
  }

  /// Local. What lookup answers when a fresh listing of the parent holds the answer; nil: ask
  /// `lookUp(parent:name:)`.
  public func cachedLookUp(parent: UInt64, name: String) -> CachedLookup? {
    guard let parentPath = inodes.path(of: parent), let path = try? childPath(of: parentPath, name)
    else { return nil }
    live?.use(parentPath)
    switch directories.lookUp(name, in: parentPath) {
    case .found(let attributes): return .found(entry(for: path, attributes: attributes))
    case .missing: return .missing
    case .unknown: return nil
    }
  }
}
