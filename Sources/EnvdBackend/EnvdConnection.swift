import Backend
import ExecLayer
import Logging

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// envd as two backends, chosen once when connecting: `EnvdExtensionBackend` when the server
/// offers the sandbox-agent extension (one round trip per operation), else `EnvdStockBackend`
/// (envd's own RPCs, and metadata envd lacks through processes, `ExecFilesystem`).
public enum EnvdBackend {
  /// Checks the server (`EnvdConnection.verifyConnection`), asks once what it offers, and
  /// returns the backend for it. Throws a RemoteError with a one-line message for a person.
  public static func connect(configuration: EnvdConfiguration) async throws -> any EnvdRemote {
    let connection = try EnvdConnection(configuration: configuration)
    do {
      try await connection.verifyConnection()
      let mode = try await connection.discoverMode()
      connection.logger.info("\(connection.client.baseURL) serves \(mode.description)")
      return connection.backend(for: mode)
    } catch {
      await connection.shutdownWithoutBlocking()
      throw error
    }
  }
}

/// What both envd backends share: the connection, envd's reads, and the lifecycle.
public protocol EnvdRemote: RemoteFilesystem, RemoteWatching {
  var connection: EnvdConnection { get }
}

extension EnvdRemote {
  /// Stops the transfer thread; later calls fail with EIO.
  public func shutdown() { connection.shutdown() }

  /// `shutdown` for async callers: suspends, not blocking a cooperative thread, until it stops.
  public func shutdownWithoutBlocking() async { await connection.shutdownWithoutBlocking() }

  /// The thread that runs this backend's transfers, as a task executor: a task that mostly
  /// waits on one round trip and prefers it avoids two thread wake-ups (see `CurlMultiLoop`).
  public var transferThread: any TaskExecutor { connection.client.transferThread }

  /// A batch made as the task's caller (`applyBatch(_:callers:)` says how each backend sends it).
  public func applyBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await applyBatch(
      changes, callers: Array(repeating: CallerIdentity.current, count: changes.count))
  }

  /// Checks the server again, as `EnvdBackend.connect` did.
  public func verifyConnection() async throws { try await connection.verifyConnection() }

  var client: EnvdClient { connection.client }
  var logger: Logger { connection.logger }
  var knownDirectories: KnownDirectories { connection.knownDirectories }
}

/// One envd server: its client (HTTP, Connect), envd's own primitives with the checks POSIX
/// needs around them (envd's Remove is recursive and silent, MakeDir and Move create parents;
/// protocol doc §8), and processes through the exec layer.
public final class EnvdConnection: Sendable {
  let client: EnvdClient
  let logger = Logger(label: "sandbox-mount.envd")
  let knownDirectories = KnownDirectories()
  /// Metadata envd lacks, as processes (`Process/Start`).
  let exec: ExecFilesystem
  /// Stock envd gives owner names: their ids, from the sandbox's user and group databases.
  let ownerIds: OwnerIds

  /// Throws a RemoteError (EINVAL) naming what is wrong with the configuration.
  public init(configuration: EnvdConfiguration) throws {
    let client = try EnvdClient(configuration: configuration)
    self.client = client
    let executor = EnvdProcessExecutor(client: client)
    exec = ExecFilesystem(executor: executor) { client.protocolPath($0) }
    ownerIds = OwnerIds(executor: executor)
  }

  /// The backend for what the server offers.
  func backend(for mode: ServerMode) -> any EnvdRemote {
    switch mode {
    case .agentExtension(let offer): EnvdExtensionBackend(connection: self, offer: offer)
    case .stock:
      EnvdStockBackend(connection: self)
    }
  }

  /// Stops the transfer thread; later calls fail with EIO.
  public func shutdown() { client.shutdown() }

  public func shutdownWithoutBlocking() async { await client.shutdownWithoutBlocking() }

  deinit { client.shutdown() }

  // MARK: envd's primitives

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

  /// envd's Remove: recursive and silent, so callers check first.
  func remove(_ path: String, context: String) async throws {
    _ = try await client.rpc(
      "Remove", PathRequest(path: client.protocolPath(path)), as: EmptyResponse.self,
      context: context)
  }

  /// Runs one exec job on `path` and returns the attributes its final stat printed.
  func runFallback(_ path: String, _ steps: [ExecScript.Step], context: String) async throws
    -> RemoteAttributes
  {
    try await exec.run(path, steps, context: context)
  }
}
