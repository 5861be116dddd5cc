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
    try remove(name: Array(path.name.utf8), in: parent, path: path)
  }

  /// Removes `name` (raw bytes: a child's name need not be UTF-8) from `parent`. `path` is the
  /// entry's path when every name on the way was UTF-8, else its nearest describable ancestor's;
  /// `pathIsExact` tells which, so a child path is only appended to an exact one.
  private static func remove(
    name: [UInt8], in parent: FileDescriptor, path: ProtocolPath, pathIsExact: Bool = true
  ) throws(SystemError) {
    let cName = name.map { CChar(bitPattern: $0) } + [0]
    if unlinkat(parent.raw, cName, 0) == 0 || errno == ENOENT { return }
    guard errno == EISDIR || errno == EPERM else { throw SystemError("unlinkat", path.requested) }
    let fd = openat(parent.raw, cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      if errno == ENOENT { return }
      throw SystemError("openat", path.requested)
    }
    let directory = FileDescriptor(fd)
    for child in try DirectoryReader.names(of: directory, path: path.requested) {
      if pathIsExact, let childName = String(validating: child, as: UTF8.self) {
        try remove(name: child, in: directory, path: path.appending(childName))
      } else {
        try remove(name: child, in: directory, path: path, pathIsExact: false)
      }
    }
    if unlinkat(parent.raw, cName, AT_REMOVEDIR) != 0 && errno != ENOENT {
      throw SystemError("unlinkat", path.requested)
    }
  }
}
