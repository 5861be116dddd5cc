import Glibc

/// The served folder. Every path is opened relative to it with `RESOLVE_IN_ROOT`, so neither
/// `..` nor a symlink (absolute or relative) can reach anything outside it: the root behaves
/// like `/` in a chroot.
public final class RootJail: Sendable {
  /// The root's canonical host path, used to turn resolved host paths back into protocol paths.
  public let hostRoot: String
  private let rootDescriptor: FileDescriptor

  public init(root: String) throws(SystemError) {
    let fd = Glibc.open(root, LinuxFlags.openPath | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open", root) }
    rootDescriptor = FileDescriptor(fd)
    guard let resolved = realpath(root, nil) else { throw SystemError("realpath", root) }
    hostRoot = String(cString: resolved)
    free(resolved)
  }

  /// Opens `path` in the root. `operation` names the call in error messages.
  public func open(
    _ path: ProtocolPath, flags: Int32, mode: mode_t = 0, operation: String = "open"
  ) throws(SystemError) -> FileDescriptor {
    let fd = openat2InRoot(
      directory: rootDescriptor.raw, path: path.relative, flags: flags, mode: mode)
    guard fd >= 0 else { throw SystemError(operation, path.requested) }
    return FileDescriptor(fd)
  }

  /// `lstat`: the final component is not followed.
  public func lstat(_ path: ProtocolPath) throws(SystemError) -> stat {
    let fd = try open(path, flags: LinuxFlags.openPath | O_NOFOLLOW, operation: "lstat")
    return try Self.fstat(fd, operation: "lstat", path: path)
  }

  /// `stat`: follows symlinks, inside the root.
  public func stat(_ path: ProtocolPath) throws(SystemError) -> stat {
    let fd = try open(path, flags: LinuxFlags.openPath, operation: "stat")
    return try Self.fstat(fd, operation: "stat", path: path)
  }

  public static func fstat(_ fd: FileDescriptor, operation: String, path: ProtocolPath)
    throws(SystemError) -> stat
  {
    var info = Glibc.stat()
    guard Glibc.fstat(fd.raw, &info) == 0 else { throw SystemError(operation, path.requested) }
    return info
  }

  /// The protocol path `fd` refers to (from /proc/self/fd), or nil if it is not inside the root
  /// or not UTF-8.
  public func protocolPath(of fd: FileDescriptor) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/fd/\(fd.raw)", &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    // A target whose name is not UTF-8 cannot be answered in JSON; callers fall back.
    guard
      let host = String(validating: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    else { return nil }
    return protocolPath(ofHostPath: host)
  }

  /// `/srv/root/a/b` → `/a/b` when the root is `/srv/root`.
  public func protocolPath(ofHostPath host: String) -> String? {
    if hostRoot == "/" { return host }
    if host == hostRoot { return "/" }
    guard host.hasPrefix(hostRoot + "/") else { return nil }
    return String(host.dropFirst(hostRoot.count))
  }
}

extension stat {
  public var fileType: mode_t { st_mode & S_IFMT }
  public var isDirectory: Bool { fileType == S_IFDIR }
  public var isSymlink: Bool { fileType == S_IFLNK }
  public var isRegular: Bool { fileType == S_IFREG }
}
