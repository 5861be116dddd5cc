import Glibc

/// Removing, renaming and hard-linking names. The root is never removed or moved.
extension ExtensionService {
  func unlink(_ request: ExtensionPathRequest) throws(ErrnoError) -> EmptyResponse {
    let entry = try resolve(request.path)
    if entry.isRoot { throw ErrnoError(EISDIR, "/") }
    try checked(unlinkat(entry.parent.raw, entry.name, 0), entry.path.description)
    return EmptyResponse()
  }

  func rmdir(_ request: ExtensionPathRequest) throws(ErrnoError) -> EmptyResponse {
    let entry = try resolve(request.path)
    if entry.isRoot { throw ErrnoError(EBUSY, "/") }
    try checked(unlinkat(entry.parent.raw, entry.name, AT_REMOVEDIR), entry.path.description)
    return EmptyResponse()
  }

  func rename(_ request: ExtensionTwoPathRequest) throws(ErrnoError) -> EmptyResponse {
    let flags = request.flags ?? 0
    guard flags == 0 || flags == LinuxExtras.renameNoReplace || flags == LinuxExtras.renameExchange
    else { throw ErrnoError(EINVAL, "unsupported rename flags \(flags)") }
    let from = try resolve(request.from, field: "from")
    let to = try resolve(request.to, field: "to")
    let detail = "\(from.path) -> \(to.path)"
    if from.isRoot || to.isRoot { throw ErrnoError(EBUSY, detail) }
    try checked(
      LinuxExtras.renameat2(from.parent.raw, from.name, to.parent.raw, to.name, flags), detail)
    return EmptyResponse()
  }

  /// A hard link to the inode `from` names itself: a symlink is linked, never followed, so
  /// nothing outside the root can be linked in.
  func link(_ request: ExtensionTwoPathRequest) throws(ErrnoError) -> ExtensionAttrResponse {
    let from = try resolve(request.from, field: "from")
    let to = try resolve(request.to, field: "to")
    let detail = "\(from.path) -> \(to.path)"
    if from.isRoot { throw ErrnoError(EPERM, detail) }
    if to.isRoot { throw ErrnoError(EEXIST, detail) }
    try checked(linkat(from.parent.raw, from.name, to.parent.raw, to.name, 0), detail)
    return ExtensionAttrResponse(attr: try ExtensionAttr(of: to))
  }
}
