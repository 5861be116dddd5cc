import Glibc

/// Why `ensureDirectories` failed, worded like envd's `EnsureDirs`.
public enum EnsureDirectoriesError: Error, Sendable, CustomStringConvertible {
  case pathIsFile(String)
  case stat(SystemError)
  case create(SystemError)
  case chown(SystemError)

  public var description: String {
    switch self {
    case .pathIsFile(let path): "path is a file: \(path)"
    case .stat(let error): "failed to stat directory: \(error)"
    case .create(let error): "failed to create directory: \(error)"
    case .chown(let error): "failed to chown directory: \(error)"
    }
  }
}

extension EnsureDirectoriesError {
  /// A parent that is a file, a name too long, a symlink loop: the request's doing, not ours.
  public var isCallersFault: Bool {
    switch self {
    case .pathIsFile: true
    case .stat(let error), .create(let error), .chown(let error): error.isCallersFault
    }
  }
}

extension SystemError {
  /// Errors a request's path or operands cause (a 4xx, where the rest are the agent's 5xx).
  public var isCallersFault: Bool { Self.callersFaults.contains(code) }

  static let callersFaults: Set<Int32> = [
    ENOTDIR, EISDIR, ENAMETOOLONG, ELOOP, EBUSY, EINVAL, EEXIST, ENOTEMPTY,
  ]
}

extension RootJail {
  /// envd's `EnsureDirs`: creates every missing directory of `path` (itself included) with
  /// 0755 (minus umask), owned by `user`. Existing symlinks to directories are followed.
  public func ensureDirectories(_ path: ProtocolPath, owner user: AgentUser)
    throws(EnsureDirectoriesError)
  {
    for depth in 1...max(path.components.count, 1) where !path.components.isEmpty {
      let prefix = ProtocolPath(cleanedComponents: Array(path.components.prefix(depth)))
      let existing: stat?
      do {
        existing = try stat(prefix)
      } catch  where error.code == ENOENT {
        existing = nil
      } catch {
        throw .stat(error)
      }
      if let existing {
        if !existing.isDirectory { throw .pathIsFile(prefix.requested) }
        continue
      }
      let parent: FileDescriptor
      do {
        parent = try open(
          prefix.parent, flags: LinuxFlags.openPath | O_DIRECTORY, operation: "mkdir")
      } catch {
        throw .create(error)
      }
      if mkdirat(parent.raw, prefix.name, 0o755) != 0 {
        if errno == EEXIST { continue }  // Created concurrently; checked on the next pass.
        throw .create(SystemError("mkdir", prefix.requested))
      }
      do {
        try chown(parent: parent, name: prefix.name, path: prefix, to: user)
      } catch {
        throw .chown(error)
      }
    }
  }

  /// Changes the owner of `name` in `parent` (not following a final symlink) to `user`.
  func chown(parent: FileDescriptor, name: String, path: ProtocolPath, to user: AgentUser)
    throws(SystemError)
  {
    guard Self.mayChown(to: user) else { return }
    if fchownat(parent.raw, name, user.uid, user.gid, AT_SYMLINK_NOFOLLOW) != 0 {
      throw SystemError("chown", path.requested)
    }
  }

  /// Changes the owner of what `fd` (an `O_PATH` or open descriptor) refers to.
  public func chown(_ fd: FileDescriptor, path: ProtocolPath, to user: AgentUser)
    throws(SystemError)
  {
    guard Self.mayChown(to: user) else { return }
    if fchownat(fd.raw, "", user.uid, user.gid, LinuxFlags.atEmptyPath) != 0 {
      throw SystemError("chown", path.requested)
    }
  }

  /// envd runs as root and always chowns. An agent run as an ordinary user can only own files
  /// itself, so it skips the chown instead of failing every write.
  static func mayChown(to _: AgentUser) -> Bool {
    geteuid() == 0
  }
}

extension ProtocolPath {
  init(cleanedComponents: [String]) {
    self.init(
      requested: "/" + cleanedComponents.joined(separator: "/"), components: cleanedComponents)
  }
}
