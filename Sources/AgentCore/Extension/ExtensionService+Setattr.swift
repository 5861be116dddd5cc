import Glibc

extension ExtensionService {
  /// Size, owner, mode and times of one inode in one call, in that order: a chown cannot then
  /// clear a requested setuid, and explicit times win over the ones truncation sets.
  func setattr(_ request: ExtensionSetattrRequest) throws(ErrnoError) -> ExtensionAttrResponse {
    let entry = try resolve(request.path)
    let path = entry.path
    let fd = try entry.openPath()
    var info = Glibc.stat()
    try checked(fstat(fd.raw, &info), path.description)
    if let size = request.size {
      if info.isDirectory { throw ErrnoError(EISDIR, path.description) }
      guard info.isRegular else { throw ErrnoError(EINVAL, "not a regular file: \(path)") }
      let file = try reopen(fd, flags: O_WRONLY, detail: path.description)
      try checked(ftruncate(file.raw, off_t(size)), path.description)
    }
    if request.uid != nil || request.gid != nil {
      try checked(
        fchownat(
          fd.raw, "", request.uid ?? uid_t.max, request.gid ?? gid_t.max, LinuxFlags.atEmptyPath),
        path.description)
    }
    if let mode = request.mode {
      // lchmod: Linux has no mode on symlinks.
      if info.isSymlink { throw ErrnoError(EOPNOTSUPP, path.description) }
      try checked(chmod(procPath(fd), mode_t(mode) & 0o7777), path.description)
    }
    if request.atime != .omit || request.mtime != .omit {
      var times = [Self.timespec(request.atime), Self.timespec(request.mtime)]
      try checked(utimensat(fd.raw, "", &times, LinuxFlags.atEmptyPath), path.description)
    }
    return ExtensionAttrResponse(attr: try attr(of: fd, path: path))
  }

  static func timespec(_ change: ExtensionSetattrRequest.TimeChange) -> Glibc.timespec {
    switch change {
    case .omit: Glibc.timespec(tv_sec: 0, tv_nsec: LinuxExtras.utimeOmit)
    case .now: Glibc.timespec(tv_sec: 0, tv_nsec: LinuxExtras.utimeNow)
    case .set(let time):
      Glibc.timespec(tv_sec: Int(time.seconds), tv_nsec: Int(time.nanoseconds))
    }
  }

  /// fsync or fdatasync of a regular file or a directory.
  func fsync(_ request: ExtensionFsyncRequest) throws(ErrnoError) -> EmptyResponse {
    let entry = try resolve(request.path)
    let path = entry.path
    let fd = try entry.openPath()
    var info = Glibc.stat()
    try checked(fstat(fd.raw, &info), path.description)
    guard info.isRegular || info.isDirectory else { throw ErrnoError(EINVAL, path.description) }
    let file = try reopen(
      fd, flags: O_RDONLY | (info.isDirectory ? O_DIRECTORY : 0), detail: path.description)
    try checked(
      request.dataOnly ? fdatasync(file.raw) : Glibc.fsync(file.raw), path.description)
    return EmptyResponse()
  }
}
