import Backend
import Glibc
import Logging
import Synchronization

/// Blocks of remote files: from memory, else from the disk cache, else one ranged GET per block.
///
/// Concurrent requests for one block share one fetch (single flight). A fetch that fails or comes
/// back shorter than the version's size promises is never stored: the next request fetches again.
/// Blocks are keyed by path and version, so a file changed remotely never serves old bytes.
///
/// Invariant: a key is in `fetches` exactly while its fetch task runs, and that task holds a
/// memory reservation of one block, released or turned into a stored block when it ends.
public final class BlockCache: Sendable {
  public let geometry: BlockGeometry
  let configuration: BlockCacheConfiguration
  private let backend: any RemoteFilesystem
  private let disk: DiskBlockStore?
  private let state: Mutex<State>
  private let logger: Logger

  private struct State {
    var memory: MemoryBlockStore
    var fetches: [BlockKey: Task<[UInt8], any Error>] = [:]
    var statistics = Statistics()
  }

  /// Counters for logs, tests and the benchmark.
  public struct Statistics: Sendable, Equatable {
    public var memoryHits = 0
    public var diskHits = 0
    public var remoteFetches = 0
    public var failedFetches = 0
    public var sharedFetches = 0
    public var prefetchesStarted = 0
    public var prefetchesRefused = 0
  }

  public init(
    backend: any RemoteFilesystem, configuration: BlockCacheConfiguration, logger: Logger
  ) throws {
    self.backend = backend
    self.configuration = configuration
    self.geometry = BlockGeometry(blockSize: configuration.blockSize)
    self.logger = logger
    let prefetchLimit = Int(Double(configuration.memoryBudget) * configuration.prefetchShare)
    self.state = Mutex(
      State(
        memory: MemoryBlockStore(budget: configuration.memoryBudget, prefetchLimit: prefetchLimit)))
    if let directory = configuration.diskDirectory {
      disk = try DiskBlockStore(
        directory: directory, budget: configuration.diskBudget, logger: logger)
    } else {
      disk = nil
    }
  }

  public var statistics: Statistics { state.withLock { $0.statistics } }

  /// Bytes held in memory, and reserved for fetches in flight.
  public var memoryUse: (stored: Int, reserved: Int) {
    state.withLock { ($0.memory.storedBytes, $0.memory.reservedBytes) }
  }

  /// The block's bytes: `geometry.expectedLength` of them, or more if the file grew since its
  /// version was taken.
  public func block(_ key: BlockKey) async throws -> [UInt8] {
    try await request(key).bytes()
  }

  /// A block that is cached or being fetched: the fetch starts now, the caller awaits it later
  /// (so a read can start its own blocks before it starts prefetches).
  public struct PendingBlock: Sendable {
    fileprivate let lookup: Lookup

    public func bytes() async throws -> [UInt8] {
      switch lookup {
      case .cached(let bytes): return bytes
      case .fetching(let task): return try await task.value
      }
    }
  }

  /// Starts (or joins) the demand fetch of `key` without waiting for it.
  public func request(_ key: BlockKey) -> PendingBlock {
    PendingBlock(lookup: lookUpOrStart(key))
  }

  /// Starts fetches of `keys` that are neither cached nor in flight, in order, while the
  /// prefetch share of the budget has room. Returns how many leading keys are now cached or in
  /// flight; the rest were refused for memory and may be asked again later.
  @discardableResult
  public func prefetch(_ keys: some Sequence<BlockKey>) -> Int {
    state.withLock { state in
      var handled = 0
      for key in keys {
        if state.memory.contains(key) || state.fetches[key] != nil {
          handled += 1
          continue
        }
        guard state.memory.reserveForPrefetch(geometry.blockSize) else {
          state.statistics.prefetchesRefused += 1
          break
        }
        state.fetches[key] = startFetch(key, prefetch: true)
        state.statistics.prefetchesStarted += 1
        handled += 1
      }
      return handled
    }
  }

  /// Waits for queued disk writes (tests).
  public func waitForDiskWrites() async {
    await disk?.waitForWrites()
  }

  // MARK: - Fetching

  fileprivate enum Lookup: Sendable {
    case cached([UInt8])
    case fetching(Task<[UInt8], any Error>)
  }

  /// A demand request: the cached block, the fetch in flight, or a new fetch.
  private func lookUpOrStart(_ key: BlockKey) -> Lookup {
    state.withLock { state in
      if let bytes = state.memory.block(key) {
        state.statistics.memoryHits += 1
        return .cached(bytes)
      }
      if let running = state.fetches[key] {
        state.statistics.sharedFetches += 1
        return .fetching(running)
      }
      state.memory.reserveForDemand(geometry.blockSize)
      let task = startFetch(key, prefetch: false)
      state.fetches[key] = task
      return .fetching(task)
    }
  }

  /// The task that loads `key` and stores it; called with the lock held and a reservation made.
  /// An unstructured task: one reader giving up must not cancel the fetch others wait for.
  private func startFetch(_ key: BlockKey, prefetch: Bool) -> Task<[UInt8], any Error> {
    Task {
      do {
        let (bytes, fromDisk) = try await load(key)
        state.withLock { state in
          state.fetches[key] = nil
          state.memory.release(geometry.blockSize, prefetch: prefetch)
          state.memory.insert(bytes, for: key)
          if fromDisk {
            state.statistics.diskHits += 1
          } else {
            state.statistics.remoteFetches += 1
          }
        }
        if !fromDisk, let disk { disk.store(bytes, identity: diskIdentity(key)) }
        return bytes
      } catch {
        state.withLock { state in
          state.fetches[key] = nil
          state.memory.release(geometry.blockSize, prefetch: prefetch)
          state.statistics.failedFetches += 1
        }
        throw error
      }
    }
  }

  /// The block from the disk cache, else from the remote, checked to be whole.
  private func load(_ key: BlockKey) async throws -> (bytes: [UInt8], fromDisk: Bool) {
    let expected = geometry.expectedLength(of: key.index, size: key.version.size)
    if let disk, let bytes = await disk.read(identity: diskIdentity(key)), bytes.count >= expected {
      return (bytes, true)
    }
    let bytes = try await backend.read(
      key.path, offset: geometry.start(of: key.index), length: geometry.blockSize,
      expectedSize: key.version.size)
    // The backend checks truncation already; this makes "never cache a short block" local.
    guard bytes.count >= expected else {
      logger.error(
        "short block \(key): expected \(expected) bytes, got \(bytes.count); not cached")
      throw RemoteError(
        errno: EIO, "read \(key.path): expected \(expected) bytes, got \(bytes.count)")
    }
    return (bytes, false)
  }

  private func diskIdentity(_ key: BlockKey) -> String {
    DiskBlockFormat.identity(
      of: key, namespace: configuration.namespace, blockSize: geometry.blockSize)
  }
}
