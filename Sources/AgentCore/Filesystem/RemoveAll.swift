import Glibc

/// Go's `os.RemoveAll` inside the jail: recursive, a symlink is removed as a link, and a path
/// that does not exist is success.
enum RemoveAll {
  static func remove(_ path: ProtocolPath, in jail: RootJail) throws(SystemError) {
    // envd would try to empty `/` itself; the agent never removes its root.
    guard !path.isRoot else { throw SystemError("unlinkat", path.requested, code: EBUSY) }
    let parent: FileDescriptor
    do {
      parent = try jail.open(
        path.parent, flags: LinuxFlags.openPath | O_DIRECTORY, operation: "unlinkat")
    } catch  where error.code == ENOENT {
      return
    }
    try remove(name: path.name, in: parent, path: path)
  }

  private static func remove(name: String, in parent: FileDescriptor, path: ProtocolPath)
    throws(SystemError)
  {
    if unlinkat(parent.raw, name, 0) == 0 || errno == ENOENT { return }
    guard errno == EISDIR || errno == EPERM else { throw SystemError("unlinkat", path.requested) }
    let fd = openat(parent.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      if errno == ENOENT { return }
      throw SystemError("openat", path.requested)
    }
    let directory = FileDescriptor(fd)
    for rawName in try DirectoryReader.names(of: directory, path: path.requested) {
      let childName = String(decoding: rawName, as: UTF8.self)
      if String(validating: rawName, as: UTF8.self) == nil {
        try removeRaw(rawName, in: directory, path: path)
      } else {
        try remove(name: childName, in: directory, path: path.appending(childName))
      }
    }
    if unlinkat(parent.raw, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
      throw SystemError("unlinkat", path.requested)
    }
  }

  /// A child whose name is not UTF-8 cannot be a Swift `String`; remove it by its bytes.
  private static func removeRaw(_ name: [UInt8], in parent: FileDescriptor, path: ProtocolPath)
    throws(SystemError)
  {
    let cName = name.map { CChar(bitPattern: $0) } + [0]
    if unlinkat(parent.raw, cName, 0) == 0 || errno == ENOENT { return }
    guard errno == EISDIR || errno == EPERM else { throw SystemError("unlinkat", path.requested) }
    let fd = openat(parent.raw, cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("openat", path.requested) }
    let directory = FileDescriptor(fd)
    for child in try DirectoryReader.names(of: directory, path: path.requested) {
      try removeRaw(child, in: directory, path: path)
    }
    if unlinkat(parent.raw, cName, AT_REMOVEDIR) != 0 && errno != ENOENT {
      throw SystemError("unlinkat", path.requested)
    }
  }
}
