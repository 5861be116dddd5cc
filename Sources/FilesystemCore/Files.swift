import Backend
import DataLayer
import Glibc

/// What `open` and `create` give the kernel.
public struct OpenedFile: Sendable {
  public var handle: UInt64
  /// The kernel may keep the file's page cache: its version has not changed since the last open.
  public var keepCache = false
}

extension Filesystem {
  /// Opens `inode`. A writable open gets the inode's staging file, downloading the current
  /// content first unless `O_TRUNC`; a failed download fails the open (EIO), so nothing partial
  /// is ever served as the file.
  public func open(_ inode: UInt64, flags: Int32) async throws -> OpenedFile {
    let writable = (flags & O_ACCMODE) != O_RDONLY
    if writable { try requireWritable() }
    let truncate = writable && (flags & O_TRUNC) != 0
    let path = try self.path(of: inode)
    // The size before any read: what remote reads and the download are checked against.
    let attributes =
      if let fresh = inodes.attributes(of: inode, maxAge: configuration.attributeLifetime) {
        fresh
      } else {
        try await backend.attributes(of: path)
      }
    inodes.store(attributes, for: inode)
    guard attributes.type != .directory else {
      throw FilesystemError.errno(EISDIR, "\(path) is a directory")
    }
    guard writable else { return openForReading(inode, path: path, attributes: attributes) }

    openFiles.beginUse(of: inode)
    do {
      let staging = try await openFiles.staging(of: inode) { [stagingArea] in
        truncate
          ? try stagingArea.makeEmpty()
          : try await stagingArea.makeWithContent(of: path, expectedSize: attributes.size)
      }
      if truncate { try staging.truncate(to: 0) }
      pageCacheVersions.forget(inode)
      let handle = openFiles.register(
        OpenFiles.Handle(inode: inode, writable: true, version: attributes.version))
      return OpenedFile(handle: handle, keepCache: false)
    } catch {
      openFiles.endUse(of: inode)
      throw error
    }
  }

  /// A read-only open with attributes taken before it; no network. Close-to-open: the page
  /// cache is kept only if the version is the one it holds.
  func openForReading(_ inode: UInt64, path: String, attributes: RemoteAttributes) -> OpenedFile {
    openFiles.beginUse(of: inode)
    let keepCache: Bool
    if openFiles.staging(of: inode) != nil {
      pageCacheVersions.forget(inode)
      keepCache = false
    } else {
      keepCache = pageCacheVersions.keepOnOpen(inode, version: attributes.version)
      // A file read before (its page cache kept) is likely a repeated walk: its neighbours
      // are cached too, so only a first walk reads ahead.
      if !keepCache { readAheadOfNextFiles(after: path) }
    }
    let handle = openFiles.register(
      OpenFiles.Handle(inode: inode, writable: false, version: attributes.version))
    return OpenedFile(handle: handle, keepCache: keepCache)
  }

  /// Creates an empty remote file at once (so others see it), then opens it with an empty
  /// staging file. A file that exists after all (our lookup may have answered from a listing up
  /// to a TTL old) is opened instead, never emptied: EEXIST with O_EXCL, else a plain open.
  public func create(parent: UInt64, name: String, mode: UInt32, flags: Int32) async throws
    -> (entry: Entry, file: OpenedFile)
  {
    try requireWritable()
    let path = try childPath(parent, name)
    // One round trip: an exclusive remote create. EEXIST without O_EXCL means our lookup
    // answered from a listing up to a TTL old, or someone else was faster: open that file,
    // never empty it (O_TRUNC aside).
    let attributes: RemoteAttributes
    do {
      attributes = try await backend.createFile(path, mode: mode & 0o7777, exclusive: true)
    } catch let error as RemoteError where error.errno == EEXIST && (flags & O_EXCL) == 0 {
      let existing = try await backend.attributes(of: path)
      guard existing.type != .directory else {
        throw FilesystemError.errno(EISDIR, "\(path) is a directory")
      }
      let entry = entry(for: path, attributes: existing)
      do {
        return (entry, try await open(entry.inode, flags: flags))
      } catch {
        inodes.forget(entry.inode, count: 1)
        throw error
      }
    }
    directoryChanged(RemotePath.parent(of: path))
    let entry = entry(for: path, attributes: attributes)
    let writable = (flags & O_ACCMODE) != O_RDONLY
    pageCacheVersions.forget(entry.inode)
    openFiles.beginUse(of: entry.inode)
    do {
      if writable {
        _ = try await openFiles.staging(of: entry.inode) { [stagingArea] in
          try stagingArea.makeEmpty()
        }
      }
    } catch {
      openFiles.endUse(of: entry.inode)
      inodes.forget(entry.inode, count: 1)
      throw error
    }
    let handle = openFiles.register(
      OpenFiles.Handle(inode: entry.inode, writable: writable, version: attributes.version))
    return (entry, OpenedFile(handle: handle))
  }

  /// Local. Reads from the inode's staging file, or returns nil when it has none and the read
  /// must go to the remote (`read`).
  public func readLocally(handle: UInt64, offset: UInt64, length: Int) throws -> [UInt8]? {
    let opened = try openHandle(handle)
    guard let staging = openFiles.staging(of: opened.inode) else { return nil }
    return try staging.read(at: offset, count: length)
  }

  /// Reads through the file reader, checked against the size stat'ed at open. The bytes may be
  /// a slice of a cached buffer.
  public func read(handle: UInt64, offset: UInt64, length: Int) async throws -> ArraySlice<UInt8> {
    let opened = try openHandle(handle)
    if let staging = openFiles.staging(of: opened.inode) {
      return ArraySlice(try staging.read(at: offset, count: length))
    }
    let path = try self.path(of: opened.inode)
    return try await reader.read(
      path, version: opened.version, offset: offset, length: length, handle: handle)
  }

  /// Local. Writes into the staging file; the remote sees it at flush, fsync or release.
  public func write(handle: UInt64, bytes: UnsafeRawBufferPointer, offset: UInt64) throws -> Int {
    let opened = try openHandle(handle)
    guard opened.writable, let staging = openFiles.staging(of: opened.inode) else {
      throw FilesystemError.errno(EBADF, "handle \(handle) is not open for writing")
    }
    try staging.write(bytes, at: offset)
    return bytes.count
  }

  /// close(2) returns what this returns: the upload's result when the handle wrote.
  public func flush(handle: UInt64) async throws {
    let opened = try openHandle(handle)
    guard opened.writable else { return }
    try await upload(opened.inode)
  }

  public func fsync(handle: UInt64) async throws {
    let opened = try openHandle(handle)
    try await upload(opened.inode)
  }

  /// The last close of a handle: uploads what a flush did not (e.g. writes through mmap), then
  /// drops the staging file when no handle of the inode is left.
  public func release(handle: UInt64) async throws {
    guard let opened = openFiles.removeHandle(handle) else { return }
    reader.release(handle: handle)
    defer { openFiles.endUse(of: opened.inode) }
    if opened.writable {
      pageCacheVersions.forget(opened.inode)
      try await upload(opened.inode)
    }
  }

  /// setattr. A size change of a file open here goes through its staging file; pending writes
  /// are uploaded before a mode, owner or time change, so a later upload does not undo it
  /// (`cp -p` sets times on the open descriptor). The rest is one backend call.
  public func setAttributes(of inode: UInt64, handle: UInt64?, changes: AttributeChanges)
    async throws -> Glibc.stat
  {
    try requireWritable()
    var remaining = changes
    if openFiles.staging(of: inode) != nil {
      if let size = changes.size {
        try await truncate(inode, handle: handle, to: size)
        remaining.size = nil
      }
      if remaining.changesMetadata { try await upload(inode) }
    }
    return try await changeRemoteAttributes(of: inode, remaining)
  }

  private func truncate(_ inode: UInt64, handle: UInt64?, to size: UInt64) async throws {
    pageCacheVersions.forget(inode)
    if let staging = openFiles.staging(of: inode) {
      try staging.truncate(to: size)
      // ftruncate on a writer: its close uploads. truncate(2) by path: visible to others now.
      let throughWriter = handle.flatMap { openFiles.handle($0) }?.writable ?? false
      if !throughWriter { try await upload(inode) }
      return
    }
    let path = try self.path(of: inode)
    if size == 0 {
      try await backend.upload(path, from: nil)
    } else {
      let attributes = try await backend.attributes(of: path)
      guard attributes.type != .directory else {
        throw FilesystemError.errno(EISDIR, "\(path) is a directory")
      }
      let staging = try await stagingArea.makeWithContent(of: path, expectedSize: attributes.size)
      try staging.truncate(to: size)
      try await stagingArea.uploadIfDirty(staging) { path }
    }
    inodes.invalidateAttributes(of: inode)
    directories.invalidate(RemotePath.parent(of: path))
  }

  /// Uploads the inode's staging file if dirty. An orphan (unlinked or replaced while open) is
  /// not uploaded: that would bring it back.
  private func upload(_ inode: UInt64) async throws {
    guard let staging = openFiles.staging(of: inode), staging.isDirty else { return }
    try await stagingArea.uploadIfDirty(staging) { [inodes] in inodes.path(of: inode) }
    try await restoreSpecialBits(of: inode)
    inodes.invalidateAttributes(of: inode)
    if let path = inodes.path(of: inode) {
      directories.invalidate(RemotePath.parent(of: path))
      otherLinksChanged(path)
    }
  }

  private func openHandle(_ handle: UInt64) throws -> OpenFiles.Handle {
    guard let opened = openFiles.handle(handle) else {
      throw FilesystemError.errno(EBADF, "unknown file handle \(handle)")
    }
    return opened
  }
}
