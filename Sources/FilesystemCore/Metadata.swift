import Backend
import Glibc

/// Metadata operations beyond files and directories: setattr without data, symlinks, hard
/// links, special files, rename flags, access. Each is one backend call (one round trip with
/// the agent extension); names longer than 255 bytes fail before any (in `childPath`).
extension Filesystem {
  /// Mode, owner, size and times of an inode without pending local writes, in one backend call.
  /// With the default owner policy a chown to the displayed owner (the mounting user) changes
  /// nothing remotely: that is what the file already shows.
  func changeRemoteAttributes(of inode: UInt64, _ changes: AttributeChanges) async throws
    -> Glibc.stat
  {
    let path = try self.path(of: inode)
    var remote = RemoteAttributeChanges(
      mode: changes.mode, uid: changes.ownerUID, gid: changes.ownerGID, size: changes.size,
      accessTime: changes.accessTime.map(Self.remoteTime),
      modificationTime: changes.modificationTime.map(Self.remoteTime))
    if !configuration.showRemoteOwners {
      if remote.uid == configuration.ownerUID { remote.uid = nil }
      if remote.gid == configuration.ownerGID { remote.gid = nil }
    }
    if remote.isEmpty || isUnchangedMode(remote, of: inode) {
      return try await attributes(of: inode)
    }
    let attributes: RemoteAttributes
    if Self.isKernelPrivilegeDrop(remote, of: inodes.attributes(of: inode, maxAge: nil)) {
      // The kernel clearing setuid/setgid after a write by someone else: its own decision,
      // made with the writer's credentials, which may not chmod the file. The sandbox's user
      // makes it.
      attributes = try await CallerIdentity.$current.withValue(nil) {
        try await backend.setAttributes(path, remote)
      }
    } else {
      attributes = try await backend.setAttributes(path, remote)
    }
    otherLinksChanged(path)
    inodes.store(attributes, for: inode)
    if remote.modificationTime != nil, let staging = openFiles.staging(of: inode) {
      // A file still open here shows its staging file's mtime: make it the one just set.
      var times = [
        timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2),  // UTIME_OMIT
        timespec(
          tv_sec: time_t(attributes.modificationTime.seconds),
          tv_nsec: Int(attributes.modificationTime.nanoseconds)),
      ]
      _ = utimensat(AT_FDCWD, staging.localPath, &times, 0)
    }
    directories.patch(
      RemotePath.parent(of: path), name: RemotePath.name(of: path), attributes: attributes)
    // Through `attributes(of:)`, so a staging file's size and mtime still show.
    return try await self.attributes(of: inode)
  }

  /// A mode change alone that only clears setuid/setgid, asked by someone other than the owner
  /// (and not root): only the kernel asks that (a write, or a truncate, by a non-owner).
  static func isKernelPrivilegeDrop(_ changes: RemoteAttributeChanges, of known: RemoteAttributes?)
    -> Bool
  {
    guard let caller = CallerIdentity.current, caller.uid != 0, let known,
      let owner = known.uid, owner != caller.uid, let mode = changes.mode, changes.uid == nil,
      changes.gid == nil, changes.size == nil, changes.accessTime == nil,
      changes.modificationTime == nil
    else { return false }
    let before = known.permissions & 0o7777
    let after = mode & 0o7777
    return after != before && after == before & ~(after ^ before) && (after ^ before) & ~0o6000 == 0
  }

  /// A chmod to the mode the file has, by attributes fresh within the attribute timeout, changes
  /// nothing and costs no round trip: rsync fchmods each temp file to the mode it just created
  /// it with.
  private func isUnchangedMode(_ changes: RemoteAttributeChanges, of inode: UInt64) -> Bool {
    guard let mode = changes.mode, changes.uid == nil, changes.gid == nil, changes.size == nil,
      changes.accessTime == nil, changes.modificationTime == nil,
      let known = inodes.attributes(of: inode, maxAge: configuration.attributeLifetime)
    else { return false }
    return known.permissions & 0o7777 == mode & 0o7777
  }

  /// An upload that does not keep owner and mode (stock envd's chowns the file, and a chown
  /// clears setuid/setgid, which a write on Linux keeps for the owner): put them back.
  func restoreSpecialBits(of inode: UInt64) async throws {
    guard !capabilities.uploadKeepsOwnerAndMode,
      let known = inodes.attributes(of: inode, maxAge: nil),
      known.type == .regular, known.permissions & 0o6000 != 0, let path = inodes.path(of: inode)
    else { return }
    let restored = try await backend.setAttributes(
      path, RemoteAttributeChanges(mode: known.permissions))
    inodes.store(restored, for: inode)
  }

  /// The stat the kernel sees. Without remote link counts, a node with several names (hard
  /// links made through the mount) shows that many: the kernel drops its own nlink on unlink,
  /// and at 0 it refuses link(2) through the remaining name with ENOENT.
  func shownStat(for attributes: RemoteAttributes, inode: UInt64) -> Glibc.stat {
    var result = configuration.stat(for: attributes, inode: inode, capabilities: capabilities)
    if !capabilities.richAttributes, attributes.type != .directory {
      result.st_nlink = nlink_t(max(1, inodes.nameCount(of: inode)))
    }
    return result
  }

  /// Our own change to the entry at `path`, as the server answered it: its new attributes
  /// (nil: it is gone) patch its directory's cached listing in place, and the directory's own
  /// new attributes (`parent`) patch the directory's inode and its entry in the listing above.
  /// When the server did not tell the directory's attributes (stock envd), those are dropped
  /// instead: the kernel drops its copy itself, and ours must go too, or the next getattr
  /// answers the old mtime (rsync then skips re-setting a directory's time); so must the
  /// listing above, which holds the same old attributes.
  func entryChanged(_ path: String, to attributes: RemoteAttributes?, parent: RemoteAttributes?) {
    let directory = RemotePath.parent(of: path)
    directories.patch(directory, name: RemotePath.name(of: path), attributes: attributes)
    directoryChanged(directory, to: parent)
  }

  /// `directory` changed (an entry came or went); `attributes`: its own, when known.
  func directoryChanged(_ directory: String, to attributes: RemoteAttributes?) {
    guard let attributes else {
      inodes.invalidateAttributes(ofPath: directory)
      if directory != "/" { directories.invalidate(RemotePath.parent(of: directory)) }
      return
    }
    inodes.store(attributes, forPath: directory)
    if directory != "/" {
      directories.patch(
        RemotePath.parent(of: directory), name: RemotePath.name(of: directory),
        attributes: attributes)
    }
  }

  /// A change to the file at `path` (size, mode, nlink) also shows under its other names: their
  /// directories' cached listings are stale.
  func otherLinksChanged(_ path: String) {
    for name in inodes.otherNames(of: path) {
      directories.invalidate(RemotePath.parent(of: name))
    }
  }

  private static func remoteTime(_ change: AttributeChanges.TimeChange) -> RemoteTimeChange {
    switch change {
    case .now: .now
    case .set(let seconds, let nanoseconds):
      .set(RemoteTime(seconds: seconds, nanoseconds: nanoseconds))
    }
  }

  public func makeSymlink(parent: UInt64, name: String, target: String) async throws -> Entry {
    try requireWritable()
    let path = try childPath(parent, name)
    guard !target.isEmpty else { throw FilesystemError.errno(ENOENT, "empty symlink target") }
    guard target.utf8.count < 4096 else {
      throw FilesystemError.errno(ENAMETOOLONG, "symlink target too long")
    }
    var created = try await backend.createSymlink(path, target: target)
    if created.attributes.symlinkTarget == nil { created.attributes.symlinkTarget = target }
    entryChanged(path, to: created.attributes, parent: created.parent)
    return entry(for: path, attributes: created.attributes)
  }

  /// The exact link text: from the cached attributes when the backend sent it, else asked.
  public func readLink(_ inode: UInt64) async throws -> String {
    if let cached = inodes.attributes(of: inode, maxAge: configuration.attributeLifetime),
      let target = cached.symlinkTarget
    {
      return target
    }
    let path = try self.path(of: inode)
    return try await backend.readLink(path)
  }

  public func makeLink(_ inode: UInt64, newParent: UInt64, newName: String) async throws -> Entry {
    try requireWritable()
    let source = try path(of: inode)
    let destination = try childPath(newParent, newName)
    let linked = try await backend.link(from: source, to: destination)
    // The file's nlink changed under every name it has, the source's own included.
    otherLinksChanged(source)
    directories.patch(
      RemotePath.parent(of: source), name: RemotePath.name(of: source),
      attributes: linked.attributes)
    inodes.addName(destination, toNodeOf: source)
    entryChanged(destination, to: linked.attributes, parent: linked.parent)
    // The source's nlink and ctime changed too.
    inodes.store(linked.attributes, for: inode)
    return entry(for: destination, attributes: linked.attributes)
  }

  /// mknod(2): regular files, FIFOs, sockets and devices, as far as the backend can make them.
  public func makeNode(parent: UInt64, name: String, mode: UInt32, device: UInt64) async throws
    -> Entry
  {
    try requireWritable()
    let path = try childPath(parent, name)
    let created: RemoteEntryState
    if mode & UInt32(S_IFMT) == UInt32(S_IFREG) || mode & UInt32(S_IFMT) == 0 {
      created = try await backend.createFile(path, mode: mode & 0o7777, exclusive: true)
    } else {
      created = try await backend.makeNode(path, mode: mode, device: device)
    }
    entryChanged(path, to: created.attributes, parent: created.parent)
    return entry(for: path, attributes: created.attributes)
  }

  /// access(2) as the caller (`uid`, `gid`) sees the attributes this mount shows. Root passes
  /// read and write checks; execute needs an x bit somewhere (or a directory), as on Linux.
  public func checkAccess(_ inode: UInt64, mask: Int32, uid: UInt32, gid: UInt32) async throws {
    let shown = try await attributes(of: inode)
    if mask & W_OK != 0 { try requireWritable() }
    let wanted = mode_t(mask & (R_OK | W_OK | X_OK))
    guard wanted != 0 else { return }
    let mode = shown.st_mode
    if uid == 0 {
      let executable = (mode & S_IFMT) == S_IFDIR || (mode & 0o111) != 0
      if mask & X_OK != 0 && !executable {
        throw FilesystemError.errno(EACCES, "no execute bit")
      }
      return
    }
    let granted: mode_t =
      if uid == shown.st_uid { (mode >> 6) & 7 } else if gid == shown.st_gid {
        (mode >> 3) & 7
      } else { mode & 7 }
    if granted & wanted != wanted { throw FilesystemError.errno(EACCES, "permission denied") }
  }

  /// renameat2 with RENAME_NOREPLACE / RENAME_EXCHANGE; other flags are EINVAL, as Linux.
  /// The caches are patched with the server's answer: the name moves between the listings.
  func renameWithFlags(source: String, destination: String, flags: UInt32) async throws {
    let known: UInt32 = 1 | 2  // RENAME_NOREPLACE | RENAME_EXCHANGE
    guard flags & ~known == 0, flags != known else {
      throw FilesystemError.errno(EINVAL, "rename flags \(flags)")
    }
    let remoteFlags = RemoteRenameFlags(rawValue: flags)
    let sourceDirectory = RemotePath.parent(of: source)
    let destinationDirectory = RemotePath.parent(of: destination)
    // What the entries were: a rename keeps them but for ctime (the server may not say).
    let moved = knownAttributes(of: source)
    let replaced = remoteFlags.contains(.exchange) ? knownAttributes(of: destination) : nil
    let answer = try await backend.rename(from: source, to: destination, flags: remoteFlags)
    // A replaced destination that had other names: their nlink dropped.
    otherLinksChanged(destination)
    if remoteFlags.contains(.exchange) {
      inodes.exchangeTrees(source, destination)
    } else {
      inodes.moveTree(from: source, to: destination)
    }
    let arrived = answer.attributes ?? moved
    if remoteFlags.contains(.exchange) {
      if let arrived, let replaced {
        directories.patch(sourceDirectory, name: RemotePath.name(of: source), attributes: replaced)
        directories.patch(
          destinationDirectory, name: RemotePath.name(of: destination), attributes: arrived)
      } else {
        directories.invalidate(sourceDirectory)
        directories.invalidate(destinationDirectory)
      }
    } else {
      directories.patch(sourceDirectory, name: RemotePath.name(of: source), attributes: nil)
      if let arrived {
        directories.patch(
          destinationDirectory, name: RemotePath.name(of: destination), attributes: arrived)
      } else {
        directories.invalidate(destinationDirectory)
      }
    }
    directoryChanged(sourceDirectory, to: answer.parent)
    if destinationDirectory != sourceDirectory {
      directoryChanged(destinationDirectory, to: answer.destinationParent)
    }
    // Only directories have listings below them (a scan of every cached listing).
    if arrived?.type != .regular || replaced.map({ $0.type != .regular }) == true {
      directories.invalidateTree(source)
      directories.invalidateTree(destination)
    }
  }

  /// The fresh attributes this mount holds for `path`: from its directory's listing or its
  /// inode. Never stale ones: they would patch a listing with what the file no longer is.
  private func knownAttributes(of path: String) -> RemoteAttributes? {
    if case .found(let attributes) = directories.lookUp(
      RemotePath.name(of: path), in: RemotePath.parent(of: path))
    {
      return attributes
    }
    return inodes.attributes(ofPath: path, maxAge: configuration.attributeLifetime)
  }
}
