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
  /// Opens `inode`. A writable open gets the inode's staging file, which downloads nothing:
  /// writes stay local until close, and reads of unwritten ranges go to the remote version
  /// stat'ed here, checked against its size as every read is.
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
        truncate ? try stagingArea.makeEmpty() : try stagingArea.make(over: attributes.version)
      }
      return try registerWriter(inode, staging: staging, truncate: truncate, attributes: attributes)
    } catch {
      openFiles.endUse(of: inode)
      throw error
    }
  }

  /// A writer's open with fresh attributes: its staging file is made here, a few local
  /// syscalls, as a write's pwrite is. nil: another open is loading the staging file.
  func openForWritingLocally(_ inode: UInt64, flags: Int32, attributes: RemoteAttributes) throws
    -> OpenedFile?
  {
    try requireWritable()
    let truncate = (flags & O_TRUNC) != 0
    openFiles.beginUse(of: inode)
    do {
      let made = try openFiles.stagingWithoutWaiting(of: inode) { [stagingArea] in
        truncate ? try stagingArea.makeEmpty() : try stagingArea.make(over: attributes.version)
      }
      guard let staging = made else {
        openFiles.endUse(of: inode)
        return nil
      }
      return try registerWriter(inode, staging: staging, truncate: truncate, attributes: attributes)
    } catch {
      openFiles.endUse(of: inode)
      throw error
    }
  }

  private func registerWriter(
    _ inode: UInt64, staging: StagingFile, truncate: Bool, attributes: RemoteAttributes
  ) throws -> OpenedFile {
    if truncate {
      try staging.truncate(to: 0)
      // Replaced whole even if it looked empty: our view may be a TTL old.
      staging.markTruncated()
    }
    // Pages the kernel holds of this very version stay: writes through the mount update
    // them as they go, so a 4 KiB edit of a big cached file does not drop all of it.
    let keepCache = !truncate && pageCacheVersions.keepOnOpen(inode, version: attributes.version)
    pageCacheVersions.forget(inode)
    let handle = openFiles.register(
      OpenFiles.Handle(inode: inode, writable: true, version: attributes.version))
    return OpenedFile(handle: handle, keepCache: keepCache)
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
    let created: RemoteEntryState
    do {
      created = try await backend.createFile(path, mode: mode & 0o7777, exclusive: true)
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
    let attributes = created.attributes
    entryChanged(path, to: attributes, parent: created.parent)
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

  /// Local. Reads from the inode's staging file when it holds the whole range, or returns nil
  /// when the read must go to the remote (`read`).
  public func readLocally(handle: UInt64, offset: UInt64, length: Int) throws -> [UInt8]? {
    let opened = try openHandle(handle)
    guard let staging = openFiles.staging(of: opened.inode) else { return nil }
    let pieces = staging.plan(offset..<offset + UInt64(length))
    guard pieces.allSatisfy(\.local) else { return nil }
    return try staging.read(at: offset, count: length)
  }

  /// Reads through the file reader, checked against the size stat'ed at open. The bytes may be
  /// a slice of a cached buffer. A file open for writing merges its local bytes with the
  /// remote's for the ranges it has not written.
  public func read(handle: UInt64, offset: UInt64, length: Int) async throws -> ArraySlice<UInt8> {
    let opened = try openHandle(handle)
    let path = try self.path(of: opened.inode)
    guard let staging = openFiles.staging(of: opened.inode) else {
      return try await reader.read(
        path, version: opened.version, offset: offset, length: length, handle: handle)
    }
    var bytes: [UInt8] = []
    for piece in staging.plan(offset..<offset + UInt64(length)) {
      let count = Int(piece.range.upperBound - piece.range.lowerBound)
      if piece.local {
        bytes += try staging.read(at: piece.range.lowerBound, count: count)
        continue
      }
      guard let version = staging.remoteVersion else {
        throw FilesystemError.errno(EIO, "\(path): no remote version to read from")
      }
      let remote = try await reader.read(
        path, version: version, offset: piece.range.lowerBound, length: count, handle: handle)
      guard remote.count == count else {
        throw FilesystemError.errno(EIO, "\(path): the remote file is shorter than it was")
      }
      bytes += remote
    }
    return ArraySlice(bytes)
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

  /// close(2) returns what this returns: the upload's result when the handle wrote. A failure
  /// is noted for the release that follows.
  public func flush(handle: UInt64) async throws {
    let opened = try openHandle(handle)
    guard opened.writable else { return }
    do {
      try await upload(opened.inode)
    } catch {
      if let staging = openFiles.staging(of: opened.inode) {
        openFiles.noteFailedFlush(handle, at: staging.changeCount)
      }
      throw error
    }
  }

  /// With write-back, returns once this file's changes and everything journaled before them
  /// reached the sandbox; without, the upload did that.
  public func fsync(handle: UInt64, dataOnly: Bool = false) async throws {
    let opened = try openHandle(handle)
    try await upload(opened.inode)
    if configuration.writeBack, let path = inodes.path(of: opened.inode) {
      try await backend.synchronize(path, dataOnly: dataOnly)
    }
  }

  /// fsync of a directory: with write-back, everything journaled reaches the sandbox first
  /// (`sandbox-mount sync` is this on the mountpoint), then the directory is synced there if
  /// this mount changed its entries since its last sync.
  public func synchronizeDirectory(_ inode: UInt64) async throws {
    guard configuration.writeBack else { return }
    try await backend.synchronizeDirectory(try path(of: inode))
  }

  /// The last close of a handle: uploads what a flush did not (e.g. writes through mmap), then
  /// drops the staging file when no handle of the inode is left. Changes whose upload failed
  /// (close(2) got the error) are dropped when no other writer has the file open: sending them
  /// later, by a retry here or with a later writer's changes (readers keep the staging file),
  /// would make a write that failed appear after all.
  public func release(handle: UInt64) async throws {
    guard let opened = openFiles.removeHandle(handle) else { return }
    reader.release(handle: handle)
    var uploaded = false
    defer {
      let lastUse = openFiles.endUse(of: opened.inode)
      if uploaded && lastUse { pagesMatchUploadedVersion(opened.inode) }
    }
    guard opened.writable else { return }
    pageCacheVersions.forget(opened.inode)
    if let failed = opened.failedFlushAt,
      openFiles.staging(of: opened.inode)?.changeCount == failed
    {
      dropUnsentChanges(of: opened.inode)
      return
    }
    do {
      try await upload(opened.inode)
    } catch {
      dropUnsentChanges(of: opened.inode)
      throw error
    }
    uploaded = true
  }

  private func dropUnsentChanges(of inode: UInt64) {
    if openFiles.dropStaging(ofReleased: inode) { inodes.invalidateAttributes(of: inode) }
  }

  /// After the last writer's close and upload: the kernel's pages are the version the writer
  /// opened (kept or read since) plus its writes, which is what the upload made (write-back
  /// keeps a change by others meanwhile apart, as a conflict). Keeping them at the next open spares dropping
  /// a large file's pages (30-120 ms for 512 MiB here) when it is opened again for an edit.
  func pagesMatchUploadedVersion(_ inode: UInt64) {
    guard let attributes = inodes.attributes(of: inode, maxAge: nil) else { return }
    pageCacheVersions.remember(inode, version: attributes.version)
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
    _ = try await changeRemoteAttributes(of: inode, AttributeChanges(size: size))
  }

  /// Sends the inode's staged changes, if any. An orphan (unlinked or replaced while open) is
  /// not uploaded: that would bring it back. The server's answer patches the caches.
  private func upload(_ inode: UInt64) async throws {
    guard let staging = openFiles.staging(of: inode), staging.isDirty else { return }
    let answer = try await stagingArea.upload(staging) { [inodes] in inodes.path(of: inode) }
    try await restoreSpecialBits(of: inode)
    guard let path = inodes.path(of: inode) else { return }
    if let answer {
      inodes.store(answer.attributes, for: inode)
      directories.patch(
        RemotePath.parent(of: path), name: RemotePath.name(of: path),
        attributes: answer.attributes)
      // An atomic replace renamed into the directory; an in-place write left it alone.
      if let parent = answer.parent { directoryChanged(RemotePath.parent(of: path), to: parent) }
    } else {
      inodes.invalidateAttributes(of: inode)
      directories.invalidate(RemotePath.parent(of: path))
    }
    otherLinksChanged(path)
  }

  private func openHandle(_ handle: UInt64) throws -> OpenFiles.Handle {
    guard let opened = openFiles.handle(handle) else {
      throw FilesystemError.errno(EBADF, "unknown file handle \(handle)")
    }
    return opened
  }
}
