import Glibc

/// `filesystem.Filesystem` unary methods over the root jail, with envd's codes and messages.
/// Everything here blocks; `ConnectUnary` runs it on the thread pool.
struct FilesystemService: Sendable {
  let services: AgentServices
  private var jail: RootJail { services.jail }

  func stat(_ request: PathRequest, user: AgentUser) throws -> EntryResponse {
    let path = try services.rpcPath(request.path, user: user)
    return EntryResponse(entry: try entryInfo(path))
  }

  func makeDir(_ request: PathRequest, user: AgentUser) throws -> EntryResponse {
    let path = try services.rpcPath(request.path, user: user)
    do {
      let info = try jail.stat(path)
      if info.isDirectory {
        throw ConnectError(.alreadyExists, "directory already exists: \(path.requested)")
      }
      throw ConnectError(
        .invalidArgument, "path already exists but it is not a directory: \(path.requested)")
    } catch let error as SystemError where error.code != ENOENT {
      throw ConnectError(failing: error, "error getting file info: \(error)")
    } catch is SystemError {
      // Does not exist yet: create it below.
    }
    do {
      try jail.ensureDirectories(path, owner: user)
    } catch {
      throw ConnectError(failing: error, "\(error)")
    }
    // envd answers with name, type and path only.
    return EntryResponse(
      entry: EntryInfo(
        name: path.name, type: .directory, path: path.requested, size: 0, mode: 0, permissions: "",
        owner: "", group: "", modifiedTime: nil, symlinkTarget: nil))
  }

  func move(_ request: MoveRequest, user: AgentUser) throws -> EntryResponse {
    let source = try services.rpcPath(request.source, user: user)
    let destination = try services.rpcPath(request.destination, user: user)
    do {
      try jail.ensureDirectories(destination.parent, owner: user)
    } catch {
      throw ConnectError(error.isCallersFault ? .failedPrecondition : .internal, "\(error)")
    }
    let failure = { (code: Int32) -> ConnectError in
      let text = "rename \(source.requested) \(destination.requested): \(SystemError.reason(code))"
      if code == ENOENT { return ConnectError(.notFound, "source file not found: \(text)") }
      let fault = SystemError("rename", "", code: code).isCallersFault
      return ConnectError(fault ? .failedPrecondition : .internal, "error renaming: \(text)")
    }
    guard !source.isRoot, !destination.isRoot else { throw failure(EBUSY) }
    let sourceParent: FileDescriptor
    let destinationParent: FileDescriptor
    do {
      sourceParent = try jail.open(source.parent, flags: LinuxFlags.openPath | O_DIRECTORY)
      destinationParent = try jail.open(
        destination.parent, flags: LinuxFlags.openPath | O_DIRECTORY)
    } catch {
      throw failure(error.code)
    }
    if renameat(sourceParent.raw, source.name, destinationParent.raw, destination.name) != 0 {
      throw failure(errno)
    }
    return EntryResponse(entry: try entryInfo(destination))
  }

  func remove(_ request: PathRequest, user: AgentUser) throws -> EmptyResponse {
    let path = try services.rpcPath(request.path, user: user)
    do {
      try RemoveAll.remove(path, in: jail)
    } catch {
      throw ConnectError(failing: error, "error removing file or directory: \(error)")
    }
    return EmptyResponse()
  }

  func listDir(_ request: ListDirRequest, user: AgentUser) throws -> EntriesResponse {
    let path = try services.rpcPath(request.path, user: user)
    let depth = request.depth == 0 ? 1 : Int(request.depth)
    let directory: FileDescriptor
    do {
      directory = try jail.open(
        path, flags: O_RDONLY | O_DIRECTORY | O_NONBLOCK, operation: "lstat")
    } catch  where error.code == ENOENT {
      throw ConnectError(.notFound, "path not found: \(error)")
    } catch  where error.code == ELOOP {
      throw ConnectError(
        .failedPrecondition, "cyclic symlink or chain >255 links at \"\(path.requested)\"")
    } catch  where error.code == ENOTDIR {
      // The path resolves to a non-directory, or a middle component is not a directory.
      guard let target = try? jail.open(path, flags: LinuxFlags.openPath) else {
        throw ConnectError(failing: error, "error resolving symlink: \(error)")
      }
      let resolved = jail.protocolPath(of: target) ?? path.requested
      throw ConnectError(.invalidArgument, "path is not a directory: \(resolved)")
    } catch {
      throw ConnectError(failing: error, "error resolving symlink: \(error)")
    }
    var entries: [EntryInfo] = []
    do {
      try walk(directory, path: path, depth: depth, into: &entries)
    } catch let error as InvalidUTF8Name {
      _ = error
      throw ConnectError(.internal, "marshal message: string field contains invalid UTF-8")
    } catch {
      let resolved = jail.protocolPath(of: directory) ?? path.requested
      throw ConnectError(failing: error, "error reading directory \(resolved): \(error)")
    }
    return EntriesResponse(entries: entries)
  }

  /// `filepath.WalkDir` order: each entry, then (for directories within `depth`) its children.
  private func walk(
    _ directory: FileDescriptor, path: ProtocolPath, depth: Int, into entries: inout [EntryInfo]
  ) throws {
    for rawName in try DirectoryReader.names(of: directory, path: path.requested) {
      guard let name = String(validating: rawName, as: UTF8.self) else {
        throw InvalidUTF8Name(bytes: rawName)
      }
      let child = path.appending(name)
      var info = Glibc.stat()
      if fstatat(directory.raw, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
        if errno == ENOENT { continue }  // Vanished during the walk (envd ≥ 0.4.2 skips it).
        throw SystemError("lstat", child.requested)
      }
      entries.append(
        EntryInfo.make(
          path: child, lstat: info, jail: jail, names: services.names, in: directory))
      guard depth > 1, info.isDirectory else { continue }
      let fd = openat(directory.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
      if fd < 0 {
        if errno == ENOENT { continue }
        throw SystemError("open", child.requested)
      }
      try walk(FileDescriptor(fd), path: child, depth: depth - 1, into: &entries)
    }
  }

  /// envd's `entryInfo`: lstat-based EntryInfo, `not_found` for ENOENT.
  private func entryInfo(_ path: ProtocolPath) throws -> EntryInfo {
    do {
      let info = try jail.lstat(path)
      return EntryInfo.make(path: path, lstat: info, jail: jail, names: services.names)
    } catch  where error.code == ENOENT {
      throw ConnectError(.notFound, "file not found: \(error)")
    } catch {
      throw ConnectError(failing: error, "error getting file info: \(error)")
    }
  }
}

extension ConnectError {
  /// `internal`, as envd answers, unless the request's path caused `error` (a file where a
  /// folder should be, a name too long): then `failed_precondition`, a 400.
  init(failing error: any Error, _ message: String) {
    let callersFault =
      (error as? SystemError)?.isCallersFault ?? (error as? EnsureDirectoriesError)?.isCallersFault
      ?? false
    self.init(callersFault ? .failedPrecondition : .internal, message)
  }
}
