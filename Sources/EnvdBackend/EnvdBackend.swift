import Backend
import ExecLayer
import Logging
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// `RemoteFilesystem` over envd's HTTP and Connect API, with POSIX semantics layered on top
/// (envd's Remove is recursive and silent, MakeDir and Move create parents; see protocol doc §8).
///
/// With the sandbox-agent extension (discovered at `verifyConnection`, or at the first call that
/// needs it) every operation is one extension round trip. Without it (stock envd), the
/// pre-checks (Stat before Remove, Move, upload) are racy against other writers of the sandbox,
/// and metadata envd lacks runs as processes (`ExecScript`).
public final class EnvdBackend: RemoteFilesystem, Sendable {
  let client: EnvdClient
  let logger = Logger(label: "sandbox-mount.envd")
  let knownMode = Mutex<ServerMode?>(nil)
  let knownDirectories = KnownDirectories()
  /// Uploads of a stock batch whose process never ran (the agent went away): the next batch
  /// removes them.
  let orphanedUploads = Mutex<Set<String>>([])
  let recentStatistics = Mutex<(ContinuousClock.Instant, RemoteFilesystemStatistics)?>(nil)
  let fallback: ExecRunner
  /// Stock envd gives owner names: their ids, from the sandbox's user and group databases.
  let ownerIds: OwnerIds

  /// Throws a RemoteError (EINVAL) naming what is wrong with the configuration.
  public init(configuration: EnvdConfiguration) throws {
    client = try EnvdClient(configuration: configuration)
    fallback = ExecRunner(executor: EnvdProcessExecutor(client: client))
    ownerIds = OwnerIds(executor: EnvdProcessExecutor(client: client))
  }

  /// Stops the transfer thread; later calls fail with EIO.
  public func shutdown() { client.shutdown() }

  /// `shutdown` for async callers: suspends, not blocking a cooperative thread, until it stops.
  public func shutdownWithoutBlocking() async { await client.shutdownWithoutBlocking() }

  deinit { client.shutdown() }

  /// The thread that runs this backend's transfers, as a task executor: a task that mostly
  /// waits on one round trip and prefers it avoids two thread wake-ups (see `CurlMultiLoop`).
  public var transferThread: any TaskExecutor { client.transferThread }

  // MARK: metadata

  public func attributes(of path: String) async throws -> RemoteAttributes {
    if try await serverMode().hasExtension { return try await extensionStat(path) }
    let attributes = await ownerIds.resolve(try await stat(path).attributes)
    if attributes.type == .characterDevice || attributes.type == .blockDevice {
      // envd tells no device number: a process does (devices are rare).
      return try await runFallback(path, [.stat], context: "stat \(path)")
    }
    return attributes
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    if try await serverMode().hasExtension { return try await extensionList(path) }
    var entries: [RemoteEntry] = []
    for entry in try await list(path) {
      var attributes = await ownerIds.resolve(entry.attributes)
      if attributes.type == .characterDevice || attributes.type == .blockDevice {
        let child = RemotePath.join(path, entry.baseName)
        attributes =
          (try? await runFallback(child, [.stat], context: "stat \(child)")) ?? attributes
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
    if try await serverMode().hasExtension {
      return try await extensionRemove(path, directory: false)
    }
    try await stockRemoveFile(path)
    return nil
  }

  @discardableResult
  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    defer { knownDirectories.forget(path) }
    if try await serverMode().hasExtension {
      return try await extensionRemove(path, directory: true)
    }
    try await stockRemoveDirectory(path)
    return nil
  }

  public func rename(from source: String, to destination: String) async throws {
    try await rename(from: source, to: destination, flags: [])
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    if try await serverMode().hasExtension { return try await extensionStatistics() }
    // A process per statfs is costly and tools call it often (df, pathconf): keep it 2 s.
    let now = ContinuousClock.now
    if let (at, statistics) = recentStatistics.withLock({ $0 }), now - at < .seconds(2) {
      return statistics
    }
    do {
      let result = try await fallback.run(client.protocolPath("/"), [.statfs])
      try result.check(context: "statfs")
      if let line = result.statfs, let statistics = ExecOutput.statistics(line) {
        recentStatistics.withLock { $0 = (now, statistics) }
        return statistics
      }
    } catch {
      logger.debug("statfs through a process failed, using /metrics: \(error)")
    }
    return try await metricsStatistics()
  }

  // MARK: stock envd

  /// A non-root caller is bound (`CallerIdentity`): changes envd's RPCs would make as envd's
  /// user run as processes under the caller instead (one process each, where Remove or Move
  /// cost one to three RPCs).
  var actsForCaller: Bool { !ExecScript.asCaller().isEmpty }

  func stockRemoveFile(_ path: String) async throws {
    let context = "unlink \(path)"
    if actsForCaller {
      return try await fallback.run(client.protocolPath(path), [.unlink]).check(context: context)
    }
    let entry = try await stat(path, context: context)
    if entry.attributes.type == .directory {
      throw RemoteError(errno: EISDIR, "\(context): is a directory")
    }
    try await remove(path, context: context)
  }

  func stockRemoveDirectory(_ path: String) async throws {
    let context = "rmdir \(path)"
    if path == "/" {
      throw RemoteError(errno: EBUSY, "\(context): the mount root cannot be removed")
    }
    if actsForCaller {
      return try await fallback.run(client.protocolPath(path), [.removeDirectory]).check(
        context: context)
    }
    let entry = try await stat(path, context: context)
    guard entry.attributes.type == .directory else {
      throw RemoteError(errno: ENOTDIR, "\(context): not a directory")
    }
    if try await !list(path, context: context).isEmpty {
      throw RemoteError(errno: ENOTEMPTY, "\(context): directory not empty")
    }
    try await remove(path, context: context)
  }

  func stockRename(from source: String, to destination: String) async throws {
    let context = "rename \(source) to \(destination)"
    if source == "/" || destination == "/" {
      throw RemoteError(errno: EBUSY, "\(context): the mount root cannot be renamed")
    }
    if actsForCaller {
      // rename(2) itself, as the caller: the kernel's permission and sticky-bit checks.
      return try await fallback.run(
        client.protocolPath(source), [.rename(to: client.protocolPath(destination))]
      ).check(context: context)
    }
    let sourceEntry = try await stat(source, context: context)
    if source == destination { return }
    let sourceIsDirectory = sourceEntry.attributes.type == .directory
    if sourceIsDirectory, destination.hasPrefix(source + "/") {
      throw RemoteError(errno: EINVAL, "\(context): cannot move a directory into itself")
    }
    var replacesEmptyDirectory = false
    if let target = try await statIfPresent(destination, context: context) {
      let targetIsDirectory = target.attributes.type == .directory
      if sourceIsDirectory, !targetIsDirectory {
        throw RemoteError(errno: ENOTDIR, "\(context): the destination is not a directory")
      }
      if !sourceIsDirectory, targetIsDirectory {
        throw RemoteError(errno: EISDIR, "\(context): the destination is a directory")
      }
      if targetIsDirectory {
        if try await !list(destination, context: context).isEmpty {
          throw RemoteError(errno: ENOTEMPTY, "\(context): the destination directory is not empty")
        }
        replacesEmptyDirectory = true
      }
    } else {
      // Move creates missing parents; rename(2) does not.
      try await requireDirectory(RemotePath.parent(of: destination), for: context)
    }
    let request = MoveRequest(
      source: client.protocolPath(source), destination: client.protocolPath(destination))
    do {
      _ = try await client.rpc("Move", request, as: EntryResponse.self, context: context)
    } catch let error as RemoteError where error.errno == EEXIST && replacesEmptyDirectory {
      // Go's os.Rename refuses to replace a directory; rename(2) replaces an empty one.
      try await remove(destination, context: context)
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

  // MARK: building blocks

  func stat(_ path: String, context: String? = nil) async throws -> EntryInfo {
    let response = try await client.rpc(
      "Stat", PathRequest(path: client.protocolPath(path)), as: EntryResponse.self,
      context: context ?? "stat \(path)")
    guard let entry = response.entry else {
      throw RemoteError(errno: EIO, "\(context ?? "stat \(path)"): the answer has no entry")
    }
    if path != "/" { knownDirectories.remember(RemotePath.parent(of: path)) }
    return entry
  }

  /// The entry, or nil when it does not exist (other errors are thrown).
  func statIfPresent(_ path: String, context: String) async throws -> EntryInfo? {
    do {
      return try await stat(path, context: context)
    } catch let error as RemoteError where error.errno == ENOENT {
      return nil
    }
  }

  func list(_ path: String, context: String? = nil) async throws -> [EntryInfo] {
    let entries =
      try await client.rpc(
        "ListDir", ListDirRequest(path: client.protocolPath(path), depth: 1),
        as: ListDirResponse.self,
        context: context ?? "list \(path)"
      ).entries ?? []
    knownDirectories.remember(path)
    return entries
  }

  /// Throws ENOENT or ENOTDIR unless `path` is (or, through a symlink, leads to) a directory.
  func requireDirectory(_ path: String, for context: String) async throws {
    if knownDirectories.contains(path) { return }
    guard let entry = try await statIfPresent(path, context: context) else {
      throw RemoteError(errno: ENOENT, "\(context): \(path) does not exist")
    }
    guard entry.attributes.type == .directory || entry.leadsToDirectory else {
      throw RemoteError(errno: ENOTDIR, "\(context): \(path) is not a directory")
    }
    knownDirectories.remember(path)
  }

  private func remove(_ path: String, context: String) async throws {
    _ = try await client.rpc(
      "Remove", PathRequest(path: client.protocolPath(path)), as: EmptyResponse.self,
      context: context)
  }
}
