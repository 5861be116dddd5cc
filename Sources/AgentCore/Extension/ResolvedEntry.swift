import Glibc

/// An entry named by an `ExtensionPath`: its parent directory opened inside the root jail
/// (`O_PATH`), and its own name, so every operation is a `*at` call that never follows the final
/// component. The root itself has the root as "parent" and an empty name.
struct ResolvedEntry {
  let path: ExtensionPath
  let parent: FileDescriptor
  /// NUL-terminated last component; just the NUL for the root.
  let name: [CChar]

  var isRoot: Bool { path.isRoot }

  init(_ path: ExtensionPath, in jail: RootJail) throws(ErrnoError) {
    self.path = path
    parent = try Self.openDirectory(path.parent, in: jail)
    name = path.name.cString
  }

  /// Opens a directory of the root: through `openat2(RESOLVE_IN_ROOT)` while the components
  /// are UTF-8, then one component at a time without following symlinks (a `String` path
  /// cannot carry the other bytes).
  static func openDirectory(_ path: ExtensionPath, in jail: RootJail) throws(ErrnoError)
    -> FileDescriptor
  {
    let utf8 = path.components.prefix { String(validating: $0, as: UTF8.self) != nil }
    let prefix = ProtocolPath(
      cleanedComponents: utf8.map { String(decoding: $0, as: UTF8.self) })
    var current: FileDescriptor
    do {
      current = try jail.open(prefix, flags: LinuxFlags.openPath | O_DIRECTORY)
    } catch {
      throw ErrnoError(error.code, path.description)
    }
    for component in path.components.dropFirst(utf8.count) {
      let fd = openat(
        current.raw, component.cString, LinuxFlags.openPath | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
      try checked(fd, path.description)
      current = FileDescriptor(fd)
    }
    return current
  }

  /// lstat of the entry.
  func lstat() throws(ErrnoError) -> stat {
    var info = stat()
    let flags = AT_SYMLINK_NOFOLLOW | (isRoot ? LinuxFlags.atEmptyPath : 0)
    try checked(fstatat(parent.raw, name, &info, flags), path.description)
    return info
  }

  /// An `O_PATH` descriptor of the entry itself (a symlink is not followed).
  func openPath() throws(ErrnoError) -> FileDescriptor {
    if isRoot { return parent }
    let fd = openat(parent.raw, name, LinuxFlags.openPath | O_NOFOLLOW | O_CLOEXEC)
    try checked(fd, path.description)
    return FileDescriptor(fd)
  }

  /// The raw text of the symlink (EINVAL when it is not one).
  func readLink() throws(ErrnoError) -> [UInt8] {
    if isRoot { throw ErrnoError(EINVAL, path.description) }
    return try Self.readLink(directory: parent.raw, name: name, path: path)
  }

  static func readLink(directory: Int32, name: [CChar], path: ExtensionPath) throws(ErrnoError)
    -> [UInt8]
  {
    var capacity = Int(PATH_MAX)
    while true {
      var buffer = [CChar](repeating: 0, count: capacity)
      let length = readlinkat(directory, name, &buffer, capacity)
      if length < 0 { throw ErrnoError(errno, path.description) }
      if length < capacity { return buffer[..<length].map { UInt8(bitPattern: $0) } }
      capacity *= 2
    }
  }
}

/// Reopens what an `O_PATH` descriptor refers to with real access (`/proc/self/fd` is the only
/// way), so the file opened is exactly the inode that was checked.
func reopen(_ fd: FileDescriptor, flags: Int32, detail: String) throws(ErrnoError) -> FileDescriptor
{
  let reopened = open("/proc/self/fd/\(fd.raw)", flags | O_CLOEXEC)
  try checked(reopened, detail)
  return FileDescriptor(reopened)
}

/// `/proc/self/fd/N`, for calls that have no descriptor form usable with `O_PATH`.
func procPath(_ fd: FileDescriptor) -> String { "/proc/self/fd/\(fd.raw)" }
