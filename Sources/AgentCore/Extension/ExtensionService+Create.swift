import Glibc

/// Creating entries: the exact mode (no umask), the owner (explicit ids, else the request user
/// as envd chowns), and the attr of the result, in one call. An entry whose owner or mode cannot
/// be set is removed again, so a failed call leaves nothing behind.
extension ExtensionService {
  func mkdir(_ request: ExtensionCreateRequest, user: AgentUser) throws(ErrnoError)
    -> ExtensionChangeResponse
  {
    let entry = try resolve(request.path)
    if entry.isRoot { throw ErrnoError(EEXIST, "/") }
    try checked(mkdirat(entry.parent.raw, entry.name, 0o700), entry.path.description)
    return try finishCreation(entry, request, user: user, mode: request.mode ?? 0o755)
  }

  /// FIFOs, sockets, regular files and device nodes, made for real in the root's folder (the
  /// kernel alone decides: EPERM without CAP_MKNOD, or where the mount is `nodev`). A token
  /// holder may already run anything as the agent's user, so this grants nothing more.
  func mknod(_ request: ExtensionCreateRequest, user: AgentUser) throws(ErrnoError)
    -> ExtensionChangeResponse
  {
    let entry = try resolve(request.path)
    let mode = request.mode ?? 0
    let type = mode_t(mode) & S_IFMT
    switch type {
    case S_IFIFO, S_IFREG, S_IFSOCK, S_IFCHR, S_IFBLK: break
    default:
      throw ErrnoError(EINVAL, "mode must hold S_IFIFO, S_IFREG, S_IFSOCK, S_IFCHR or S_IFBLK")
    }
    if entry.isRoot { throw ErrnoError(EEXIST, "/") }
    let device =
      type == S_IFCHR || type == S_IFBLK ? dev_t(truncatingIfNeeded: request.rdev ?? 0) : 0
    try checked(
      mknodat(entry.parent.raw, entry.name, type | 0o600, device), entry.path.description)
    return try finishCreation(entry, request, user: user, mode: mode)
  }

  /// A regular file, `O_EXCL` by default. Non-exclusive: an existing regular file is answered
  /// as it is.
  func create(_ request: ExtensionCreateRequest, user: AgentUser) throws(ErrnoError)
    -> ExtensionChangeResponse
  {
    let entry = try resolve(request.path)
    let exclusive = request.exclusive ?? true
    if entry.isRoot { throw ErrnoError(exclusive ? EEXIST : EISDIR, "/") }
    // Without O_EXCL a racing creator may win; then the file it made is the answer.
    for _ in 0..<8 {
      if !exclusive, let existing = try existingFile(entry) { return existing }
      let fd = openat(
        entry.parent.raw, entry.name, O_CREAT | O_EXCL | O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
      if fd >= 0 {
        close(fd)
        return try finishCreation(entry, request, user: user, mode: request.mode ?? 0o644)
      }
      if errno != EEXIST || exclusive { throw ErrnoError(errno, entry.path.description) }
    }
    throw ErrnoError(EEXIST, entry.path.description)
  }

  /// For a non-exclusive create: the attr of an existing regular file, nil if nothing is there.
  private func existingFile(_ entry: ResolvedEntry) throws(ErrnoError) -> ExtensionChangeResponse? {
    let info: Glibc.stat
    do {
      info = try entry.lstat()
    } catch  where error.code == ENOENT {
      return nil
    }
    if info.isSymlink { throw ErrnoError(ELOOP, entry.path.description) }
    if info.isDirectory { throw ErrnoError(EISDIR, entry.path.description) }
    if !info.isRegular { throw ErrnoError(EEXIST, entry.path.description) }
    return ExtensionChangeResponse(
      attr: ExtensionAttr(info: info), parent: directoryAttr(entry.parent))
  }

  /// A symlink holding exactly `target`.
  func symlink(_ request: ExtensionCreateRequest, user: AgentUser) throws(ErrnoError)
    -> ExtensionChangeResponse
  {
    let entry = try resolve(request.path)
    guard let target = request.target?.bytes else {
      throw ErrnoError(EINVAL, "target is required")
    }
    guard !target.contains(0) else { throw ErrnoError(EINVAL, "target contains a NUL byte") }
    if entry.isRoot { throw ErrnoError(EEXIST, "/") }
    try checked(
      symlinkat(target.cString, entry.parent.raw, entry.name), entry.path.description)
    return try finishCreation(entry, request, user: user, mode: nil)
  }

  /// Owner first (a chown clears setuid and setgid), then the exact mode; undone on failure.
  private func finishCreation(
    _ entry: ResolvedEntry, _ request: ExtensionCreateRequest, user: AgentUser, mode: UInt32?
  ) throws(ErrnoError) -> ExtensionChangeResponse {
    do {
      let fd = try entry.openPath()
      try applyOwner(
        fd, in: entry, uid: request.uid, gid: request.gid, user: user, caller: request.caller)
      var info = Glibc.stat()
      try checked(fstat(fd.raw, &info), entry.path.description)
      if let mode, !info.isSymlink {
        var wanted = mode_t(mode) & 0o7777
        // mkdir in a setgid directory inherits setgid; Linux keeps that whatever the mode says.
        if info.isDirectory { wanted |= info.st_mode & S_ISGID }
        if info.st_mode & 0o7777 != wanted {
          try setCreationMode(wanted, of: fd, info: info, in: entry, caller: request.caller)
        }
      }
      return ExtensionChangeResponse(
        attr: try attr(of: fd, path: entry.path), parent: directoryAttr(entry.parent))
    } catch {
      let wasDirectory = (try? entry.lstat())?.isDirectory ?? false
      unlinkat(entry.parent.raw, entry.name, wasDirectory ? AT_REMOVEDIR : 0)
      throw error
    }
  }

  /// The mode a creating call gives, which a caller's own chmod could not always set (the
  /// kernel strips setgid from a chmod by a non-member): the agent sets it on the caller's new
  /// entry, with Linux's creation rule instead (no setgid on a group-executable file made in a
  /// setgid directory by a non-member).
  private func setCreationMode(
    _ wanted: mode_t, of fd: FileDescriptor, info: Glibc.stat, in entry: ResolvedEntry,
    caller: ExtensionCaller?
  ) throws(ErrnoError) {
    guard let caller, CallerCredentials.honoured, info.st_uid == caller.uid else {
      try checked(chmod(procPath(fd), wanted), entry.path.description)
      return
    }
    var mode = wanted
    var parent = Glibc.stat()
    if !info.isDirectory, mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP,
      fstat(entry.parent.raw, &parent) == 0, parent.st_mode & S_ISGID != 0,
      !CallerCredentials.isMember(caller, of: parent.st_gid)
    {
      mode &= ~S_ISGID
    }
    try CallerCredentials.asAgent(suspending: caller) { () throws(ErrnoError) in
      try checked(chmod(procPath(fd), mode), entry.path.description)
    }
  }

  /// Explicit ids win; otherwise the request user, when the agent may chown at all. In a setgid
  /// directory the group the kernel gave (the directory's) stays, as on Linux. Made as a
  /// caller, the entry keeps the owner the kernel gave it (the caller's fsuid and fsgid, or the
  /// setgid directory's group).
  func applyOwner(
    _ fd: FileDescriptor, in entry: ResolvedEntry, uid: UInt32?, gid: UInt32?, user: AgentUser,
    caller: ExtensionCaller?
  ) throws(ErrnoError) {
    var uid = uid
    var gid = gid
    let kernelAssigned = caller != nil && CallerCredentials.honoured
    if RootJail.mayChown(to: user), !kernelAssigned {
      uid = uid ?? user.uid
      var parent = Glibc.stat()
      let inheritsGroup = fstat(entry.parent.raw, &parent) == 0 && parent.st_mode & S_ISGID != 0
      if !inheritsGroup { gid = gid ?? user.gid }
    }
    guard uid != nil || gid != nil else { return }
    try checked(
      fchownat(fd.raw, "", uid ?? uid_t.max, gid ?? gid_t.max, LinuxFlags.atEmptyPath),
      entry.path.description)
  }
}
