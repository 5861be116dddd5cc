import Backend
import ExecLayer
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Stock envd (or `sandbox-agent --envd-compat`): envd's own RPCs where they are exact enough,
/// with the checks POSIX needs around them, and the metadata envd lacks as processes
/// (`ExecFilesystem`). The pre-checks (Stat before Remove, Move, upload) are racy against other
/// writers of the sandbox.
public final class EnvdStockBackend: EnvdRemote, ExecMetadataBackend, Sendable {
  public let connection: EnvdConnection
  let recentStatistics = Mutex<(ContinuousClock.Instant, RemoteFilesystemStatistics)?>(nil)

  let batches: ExecBatch

  init(connection: EnvdConnection) {
    self.connection = connection
    batches = ExecBatch(exec: connection.exec)
  }

  public var exec: ExecFilesystem { connection.exec }

  /// Its processes act as the caller when envd's user is root and the sandbox has setpriv;
  /// otherwise as envd's user (ExecScript decides, in the sandbox).
  public func capabilities() async -> RemoteCapabilities {
    RemoteCapabilities(
      rangedReads: true, offsetWrites: true, hardLinks: true, batchChanges: true, watch: true,
      owners: .ids, actsAsCaller: true, description: ServerMode.stock.description)
  }

  // MARK: RemoteFilesystem

  public func attributes(of path: String) async throws -> RemoteAttributes {
    let attributes = await connection.ownerIds.resolve(
      try await connection.stat(path).attributes)
    if attributes.type == .characterDevice || attributes.type == .blockDevice {
      // envd tells no device number: a process does (devices are rare).
      return try await exec.attributes(of: path)
    }
    return attributes
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    var entries: [RemoteEntry] = []
    for entry in try await connection.list(path) {
      var attributes = await connection.ownerIds.resolve(entry.attributes)
      if attributes.type == .characterDevice || attributes.type == .blockDevice {
        let child = RemotePath.join(path, entry.baseName)
        attributes = (try? await exec.attributes(of: child)) ?? attributes
      }
      entries.append(RemoteEntry(name: entry.baseName, attributes: attributes))
    }
    return entries
  }

  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    _ = try await createDirectory(path, mode: mode)
  }

  @discardableResult
  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    defer { knownDirectories.forget(path) }
    try await stockRemoveFile(path)
    return nil
  }

  @discardableResult
  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    defer { knownDirectories.forget(path) }
    try await stockRemoveDirectory(path)
    return nil
  }

  public func rename(from source: String, to destination: String) async throws {
    try await rename(from: source, to: destination, flags: [])
  }

  @discardableResult
  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    let context = "rename \(source) to \(destination)"
    defer {
      knownDirectories.forget(source)
      knownDirectories.forget(destination)
    }
    if flags.contains(.exchange) {
      // envd's Move is a plain rename(2) and coreutils' `mv --exchange` is too new to rely on:
      // EINVAL, as a Linux filesystem without RENAME_EXCHANGE answers (callers fall back).
      throw RemoteError(errno: EINVAL, "\(context): RENAME_EXCHANGE needs the agent extension")
    }
    if flags.contains(.noReplace) {
      // Not atomic on stock envd: a check, then Move (documented in the README).
      if try await connection.statIfPresent(destination, context: context) != nil {
        throw RemoteError(errno: EEXIST, "\(context): the destination exists")
      }
    }
    try await stockRename(from: source, to: destination)
    return RemoteNameChange()
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    // A process per statfs is costly and tools call it often (df, pathconf): keep it 2 s.
    let now = ContinuousClock.now
    if let (at, statistics) = recentStatistics.withLock({ $0 }), now - at < .seconds(2) {
      return statistics
    }
    do {
      let statistics = try await exec.filesystemStatistics()
      recentStatistics.withLock { $0 = (now, statistics) }
      return statistics
    } catch {
      logger.debug("statfs through a process failed, using /metrics: \(error)")
    }
    return try await metricsStatistics()
  }

  // MARK: envd's primitives with POSIX's checks

  /// A non-root caller is bound (`CallerIdentity`): changes envd's RPCs would make as envd's
  /// user run as processes under the caller instead (one process each, where Remove or Move
  /// cost one to three RPCs).
  var actsForCaller: Bool { !ExecScript.asCaller().isEmpty }

  func stockRemoveFile(_ path: String) async throws {
    let context = "unlink \(path)"
    if actsForCaller {
      return try await connection.exec.check(path, [.unlink], context: context)
    }
    let entry = try await connection.stat(path, context: context)
    if entry.attributes.type == .directory {
      throw RemoteError(errno: EISDIR, "\(context): is a directory")
    }
    try await connection.remove(path, context: context)
  }

  func stockRemoveDirectory(_ path: String) async throws {
    let context = "rmdir \(path)"
    if path == "/" {
      throw RemoteError(errno: EBUSY, "\(context): the mount root cannot be removed")
    }
    if actsForCaller {
      return try await connection.exec.check(path, [.removeDirectory], context: context)
    }
    let entry = try await connection.stat(path, context: context)
    guard entry.attributes.type == .directory else {
      throw RemoteError(errno: ENOTDIR, "\(context): not a directory")
    }
    if try await !connection.list(path, context: context).isEmpty {
      throw RemoteError(errno: ENOTEMPTY, "\(context): directory not empty")
    }
    try await connection.remove(path, context: context)
  }

  func stockRename(from source: String, to destination: String) async throws {
    let context = "rename \(source) to \(destination)"
    if source == "/" || destination == "/" {
      throw RemoteError(errno: EBUSY, "\(context): the mount root cannot be renamed")
    }
    if actsForCaller {
      // rename(2) itself, as the caller: the kernel's permission and sticky-bit checks.
      return try await connection.exec.rename(from: source, to: destination)
    }
    let sourceEntry = try await connection.stat(source, context: context)
    if source == destination { return }
    let sourceIsDirectory = sourceEntry.attributes.type == .directory
    if sourceIsDirectory, destination.hasPrefix(source + "/") {
      throw RemoteError(errno: EINVAL, "\(context): cannot move a directory into itself")
    }
    var replacesEmptyDirectory = false
    if let target = try await connection.statIfPresent(destination, context: context) {
      let targetIsDirectory = target.attributes.type == .directory
      if sourceIsDirectory, !targetIsDirectory {
        throw RemoteError(errno: ENOTDIR, "\(context): the destination is not a directory")
      }
      if !sourceIsDirectory, targetIsDirectory {
        throw RemoteError(errno: EISDIR, "\(context): the destination is a directory")
      }
      if targetIsDirectory {
        if try await !connection.list(destination, context: context).isEmpty {
          throw RemoteError(errno: ENOTEMPTY, "\(context): the destination directory is not empty")
        }
        replacesEmptyDirectory = true
      }
    } else {
      // Move creates missing parents; rename(2) does not.
      try await connection.requireDirectory(RemotePath.parent(of: destination), for: context)
    }
    let request = MoveRequest(
      source: client.protocolPath(source), destination: client.protocolPath(destination))
    do {
      _ = try await client.rpc("Move", request, as: EntryResponse.self, context: context)
    } catch let error as RemoteError where error.errno == EEXIST && replacesEmptyDirectory {
      // Go's os.Rename refuses to replace a directory; rename(2) replaces an empty one.
      try await connection.remove(destination, context: context)
      _ = try await client.rpc("Move", request, as: EntryResponse.self, context: context)
    }
  }

  func metricsStatistics() async throws -> RemoteFilesystemStatistics {
    let context = "statfs"
    let response = try await client.get(route: "/metrics")
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.status == 200 else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
    let metrics: MetricsResponse
    do {
      metrics = try decodeJSON(MetricsResponse.self, response.body)
    } catch {
      throw RemoteError(errno: EIO, "\(context): undecodable /metrics answer: \(error)")
    }
    return RemoteFilesystemStatistics(
      totalBytes: metrics.diskTotal?.value ?? 0, usedBytes: metrics.diskUsed?.value ?? 0)
  }
}
