import Glibc

/// Removing, renaming and hard-linking names. The root is never removed or moved. Every answer
/// carries the changed directories' attrs (`ExtensionChangeResponse`).
extension ExtensionService {
  func unlink(_ request: ExtensionPathRequest) throws(ErrnoError) -> ExtensionChangeResponse {
    let entry = try resolve(request.path)
    if entry.isRoot { throw ErrnoError(EISDIR, "/") }
    try checked(unlinkat(entry.parent.raw, entry.name, 0), entry.path.description)
    return ExtensionChangeResponse(parent: directoryAttr(entry.parent))
  }

  func rmdir(_ request: ExtensionPathRequest) throws(ErrnoError) -> ExtensionChangeResponse {
    let entry = try resolve(request.path)
    if entry.isRoot { throw ErrnoError(EBUSY, "/") }
    try checked(unlinkat(entry.parent.raw, entry.name, AT_REMOVEDIR), entry.path.description)
    return ExtensionChangeResponse(parent: directoryAttr(entry.parent))
  }

  func rename(_ request: ExtensionTwoPathRequest) throws(ErrnoError) -> ExtensionChangeResponse {
    let flags = request.flags ?? 0
    guard flags == 0 || flags == LinuxExtras.renameNoReplace || flags == LinuxExtras.renameExchange
    else { throw ErrnoError(EINVAL, "unsupported rename flags \(flags)") }
    let from = try resolve(request.from, field: "from")
    let to = try resolve(request.to, field: "to")
    let detail = "\(from.path) -> \(to.path)"
    if from.isRoot || to.isRoot { throw ErrnoError(EBUSY, detail) }
    try checked(
      LinuxExtras.renameat2(from.parent.raw, from.name, to.parent.raw, to.name, flags), detail)
    let fromParent = directoryAttr(from.parent)
    let toParent = directoryAttr(to.parent)
    return ExtensionChangeResponse(
      attr: try? ExtensionAttr(of: to), parent: fromParent,
      toParent: toParent?.info.st_ino == fromParent?.info.st_ino ? nil : toParent)
  }

  /// A hard link to the inode `from` names itself: a symlink is linked, never followed, so
  /// nothing outside the root can be linked in.
  func link(_ request: ExtensionTwoPathRequest) throws(ErrnoError) -> ExtensionChangeResponse {
    let from = try resolve(request.from, field: "from")
    let to = try resolve(request.to, field: "to")
    let detail = "\(from.path) -> \(to.path)"
    if from.isRoot { throw ErrnoError(EPERM, detail) }
    if to.isRoot { throw ErrnoError(EEXIST, detail) }
    try checked(linkat(from.parent.raw, from.name, to.parent.raw, to.name, 0), detail)
    return ExtensionChangeResponse(
      attr: try ExtensionAttr(of: to), parent: directoryAttr(to.parent))
  }

  /// The attr of a directory an answer reports; nil if it cannot be stat'ed (the change itself
  /// succeeded, so that is no error).
  func directoryAttr(_ directory: FileDescriptor) -> ExtensionAttr? {
    var info = Glibc.stat()
    guard fstat(directory.raw, &info) == 0 else { return nil }
    return ExtensionAttr(info: info)
  }
}
