import Glibc

extension ExtensionService {
  func stat(_ request: ExtensionPathRequest) throws(ErrnoError) -> ExtensionAttrResponse {
    ExtensionAttrResponse(attr: try ExtensionAttr(of: try resolve(request.path)))
  }

  func readlink(_ request: ExtensionPathRequest) throws(ErrnoError) -> ExtensionReadlinkResponse {
    ExtensionReadlinkResponse(target: try resolve(request.path).readLink())
  }

  /// The directory's own attr and every entry's, in one answer. The final component is not
  /// followed: a symlink to a directory is ENOTDIR, as opendir of the link's inode would be.
  func listDir(_ request: ExtensionPathRequest) throws(ErrnoError) -> ExtensionListDirResponse {
    let entry = try resolve(request.path)
    let path = entry.path
    let fd =
      entry.isRoot
      ? openat(entry.parent.raw, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
      : openat(
        entry.parent.raw, entry.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    try checked(fd, path.description)
    let directory = FileDescriptor(fd)
    let names: [[UInt8]]
    do {
      names = try DirectoryReader.names(of: directory, path: path.description)
    } catch {
      throw ErrnoError(error)
    }
    // After reading: reading moved the directory's atime.
    let own = try attr(of: directory, path: path)
    var entries: [ExtensionAttr] = []
    entries.reserveCapacity(names.count)
    for name in names {
      let cName = name.cString
      var info = Glibc.stat()
      if fstatat(directory.raw, cName, &info, AT_SYMLINK_NOFOLLOW) != 0 {
        if errno == ENOENT { continue }  // Removed while listing.
        throw ErrnoError(errno, path.appending(name).description)
      }
      var target: [UInt8]?
      if info.isSymlink {
        do {
          target = try ResolvedEntry.readLink(
            directory: directory.raw, name: cName, path: path.appending(name))
        } catch  where error.code == ENOENT || error.code == EINVAL {
          continue  // Removed or replaced while listing.
        }
        // Again: the read may have moved the link's atime.
        if fstatat(directory.raw, cName, &info, AT_SYMLINK_NOFOLLOW) != 0 { continue }
      }
      entries.append(ExtensionAttr(info: info, target: target, name: name))
    }
    return ExtensionListDirResponse(attr: own, entries: entries)
  }

  func statfs(_: ExtensionEmptyRequest) throws(ErrnoError) -> ExtensionStatfsResponse {
    let root = try rootDirectory()
    var info = statvfs()
    try checked(fstatvfs(root.raw, &info), "/")
    return ExtensionStatfsResponse(
      bsize: UInt32(truncatingIfNeeded: info.f_bsize),
      frsize: UInt32(truncatingIfNeeded: info.f_frsize),
      blocks: String(UInt64(info.f_blocks)), bfree: String(UInt64(info.f_bfree)),
      bavail: String(UInt64(info.f_bavail)), files: String(UInt64(info.f_files)),
      ffree: String(UInt64(info.f_ffree)), favail: String(UInt64(info.f_favail)),
      namemax: UInt32(truncatingIfNeeded: info.f_namemax), flag: String(UInt64(info.f_flag)))
  }
}
