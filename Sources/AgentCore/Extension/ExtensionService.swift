import Glibc

/// `sandboxagent.v1.Extension` over the root jail. Every method blocks (`ConnectUnary` runs it
/// on the thread pool) and throws `ErrnoError` with the errno Linux gave.
struct ExtensionService: Sendable {
  let services: AgentServices
  var jail: RootJail { services.jail }

  func resolve(_ raw: RawPath?, field: String = "path") throws(ErrnoError) -> ResolvedEntry {
    try ResolvedEntry(RawPath.require(raw, field: field), in: jail)
  }

  /// The attr of what `fd` (an `O_PATH` descriptor) refers to: exactly that inode.
  func attr(of fd: FileDescriptor, path: ExtensionPath) throws(ErrnoError) -> ExtensionAttr {
    var info = Glibc.stat()
    try checked(fstat(fd.raw, &info), path.description)
    guard info.isSymlink else { return ExtensionAttr(info: info) }
    let target = try ResolvedEntry.readLink(directory: fd.raw, name: [0], path: path)
    try checked(fstat(fd.raw, &info), path.description)  // The read may have moved the atime.
    return ExtensionAttr(info: info, target: target)
  }

  func rootDirectory() throws(ErrnoError) -> FileDescriptor {
    try ResolvedEntry.openDirectory(.root, in: jail)
  }
}
