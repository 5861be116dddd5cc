import Backend
import Glibc
import Logging
import Synchronization

/// Blocks of remote files: from memory, else from the disk cache, else from ranged GETs.
///
/// Concurrent requests for one block share one fetch (single flight). A prefetch of consecutive
/// blocks is one GET for up to `runBlocks` of them, whose buffer they share. A fetch that fails
/// or comes back shorter than the version's size promises stores nothing: the next request
/// fetches again. Blocks are keyed by path and version, so a changed file never serves old bytes.
///
/// Invariant: a key is in `fetches` exactly while the fetch that will deliver it runs, and that
/// fetch holds a memory reservation of one block per key, released or turned into a stored
/// buffer when it ends.
public final class BlockCache: Sendable {
  public let geometry: BlockGeometry
  let configuration: BlockCacheConfiguration
  /// Blocks fetched by one GET when prefetching consecutive blocks.
  let runBlocks: Int
  private let backend: any RemoteFilesystem
  private let disk: DiskBlockStore?
  private let state: Mutex<State>
  private let logger: Logger

  /// A fetch in flight as a key's waiters see it: the buffer it will fill, and where the key's
  /// block starts in it.
  private struct Fetch {
    var buffer: Task<[UInt8], any Error>
    var offset: Int
  }

  private struct State {
    var memory: MemoryBlockStore
    var fetches: [BlockKey: Fetch] = [:]
    var statistics = Statistics()
  }

  /// Counters for logs, tests and the benchmark.
  public struct Statistics: Sendable, Equatable, CustomStringConvertible {
    public var memoryHits = 0
    public var diskHits = 0
    /// Blocks that came from the remote, and the GETs that brought them.
    public var remoteBlocks = 0
    public var remoteRequests = 0
    public var failedFetches = 0
    public var sharedFetches = 0
    public var prefetchesStarted = 0
    public var prefetchesRefused = 0

    public var description: String {
      "\(memoryHits) memory hits, \(sharedFetches) shared fetches, \(diskHits) disk hits, \(remoteBlocks) blocks in \(remoteRequests) GETs, \(failedFetches) failed, \(prefetchesStarted) prefetched, \(prefetchesRefused) prefetches refused"
    }
  }

  public init(
    backend: any RemoteFilesystem, configuration: BlockCacheConfiguration, logger: Logger
  ) throws {
    self.backend = backend
    self.configuration = configuration
    self.geometry = BlockGeometry(blockSize: configuration.blockSize)
    self.runBlocks = max(1, configuration.prefetchRunSize / configuration.blockSize)
    self.logger = logger
    // Blocks queued for the disk may have left memory's LRU already: their queue gets a share
    // of the budget (an eighth, at most 32 MiB), the blocks the rest.
    let diskQueue =
      configuration.diskDirectory == nil
      ? 0 : min(32 << 20, max(2 * configuration.blockSize, configuration.memoryBudget / 8))
    let blocksBudget = max(configuration.blockSize, configuration.memoryBudget - diskQueue)
    let prefetchLimit = Int(Double(blocksBudget) * configuration.prefetchShare)
    self.state = Mutex(
      State(memory: MemoryBlockStore(budget: blocksBudget, prefetchLimit: prefetchLimit)))
    if let directory = configuration.diskDirectory {
      disk = try DiskBlockStore(
        directory: directory, budget: configuration.diskBudget, pendingWriteLimit: diskQueue,
        logger: logger)
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
  public func block(_ key: BlockKey) async throws -> BlockBytes {
    try await request(key).bytes()
  }

  /// A block that is cached or being fetched: the fetch starts now, the caller awaits it later
  /// (so a read can start its own blocks before it starts prefetches).
  public struct PendingBlock: Sendable {
    fileprivate let lookup: Lookup

    public func bytes() async throws -> BlockBytes {
      switch lookup {
      case .cached(let bytes):
        return bytes
      case .fetching(let buffer, let offset, let blockSize):
        let all = try await buffer.value
        return all[min(offset, all.count)..<min(offset + blockSize, all.count)]
      }
    }
  }

  /// Whether any of `keys` is in memory, being fetched, or in the disk cache.
  public func holdsAny(of keys: some Sequence<BlockKey>) -> Bool {
    let keys = Array(keys)
    return state.withLock { state in
      keys.contains { key in
        state.memory.contains(key) || state.fetches[key] != nil
          || disk?.contains(identity: diskIdentity(key)) == true
      }
    }
  }

  /// Starts (or joins) the demand fetch of `key` without waiting for it.
  public func request(_ key: BlockKey) -> PendingBlock {
    PendingBlock(lookup: lookUpOrStart(key))
  }

  /// Starts fetches of `keys` that are neither cached nor in flight, in order, while the
  /// prefetch share of the budget has room. Consecutive blocks of one file missing from the disk
  /// cache are fetched together, up to `runBlocks` per ranged GET: fewer, larger requests cost
  /// both ends less per byte. Returns how many leading keys are now cached or in flight; the
  /// rest were refused for memory and may be asked again later.
  @discardableResult
  public func prefetch(_ keys: some Sequence<BlockKey>) -> Int {
    state.withLock { state in
      var handled = 0
      var run: [BlockKey] = []
      for key in keys {
        if state.memory.contains(key) || state.fetches[key] != nil {
          startFetch(&run, prefetch: true, in: &state)
          handled += 1
          continue
        }
        guard state.memory.reserveForPrefetch(geometry.blockSize) else {
          state.statistics.prefetchesRefused += 1
          break
        }
        state.statistics.prefetchesStarted += 1
        handled += 1
        if let disk, disk.contains(identity: diskIdentity(key)) {
          startFetch(&run, prefetch: true, in: &state)
          var single = [key]
          startFetch(&single, prefetch: true, in: &state)
          continue
        }
        if let last = run.last,
          last.index + 1 != key.index || last.path != key.path || last.version != key.version
            || run.count >= runBlocks
        {
          startFetch(&run, prefetch: true, in: &state)
        }
        run.append(key)
      }
      startFetch(&run, prefetch: true, in: &state)
      return handled
    }
  }

  /// Waits for queued disk writes (tests).
  public func waitForDiskWrites() async {
    await disk?.waitForWrites()
  }

  // MARK: - Fetching

  fileprivate enum Lookup: Sendable {
    case cached(BlockBytes)
    case fetching(Task<[UInt8], any Error>, offset: Int, blockSize: Int)
  }

  /// A demand request: the cached block, the fetch in flight, or a new fetch.
  private func lookUpOrStart(_ key: BlockKey) -> Lookup {
    state.withLock { state in
      if let bytes = state.memory.block(key) {
        state.statistics.memoryHits += 1
        return .cached(bytes)
      }
      if state.fetches[key] != nil {
        state.statistics.sharedFetches += 1
      } else {
        state.memory.reserveForDemand(geometry.blockSize)
        var single = [key]
        startFetch(&single, prefetch: false, in: &state)
      }
      let fetch = state.fetches[key]!
      return .fetching(fetch.buffer, offset: fetch.offset, blockSize: geometry.blockSize)
    }
  }

  /// Starts one fetch for the consecutive blocks of `run` (reserved already; called with the
  /// lock held) and empties `run`. One block may come from the disk cache; more are one GET.
  /// An unstructured task: one reader giving up must not cancel the fetch others wait for.
  private func startFetch(_ run: inout [BlockKey], prefetch: Bool, in state: inout State) {
    guard let first = run.first else { return }
    let keys = run
    run.removeAll(keepingCapacity: true)
    let buffer = Task {
      do {
        let (bytes, fromDisk) = try await load(keys)
        let blocks = try cut(bytes, into: keys)
        store(blocks, prefetch: prefetch, fromDisk: fromDisk)
        return bytes
      } catch {
        fail(keys, prefetch: prefetch)
        throw error
      }
    }
    for key in keys {
      let offset = Int(geometry.start(of: key.index) - geometry.start(of: first.index))
      state.fetches[key] = Fetch(buffer: buffer, offset: offset)
    }
  }

  /// The bytes of `keys` (consecutive): one block from the disk cache if it has it, else one
  /// ranged GET for all of them.
  private func load(_ keys: [BlockKey]) async throws -> (bytes: [UInt8], fromDisk: Bool) {
    let first = keys[0]
    if keys.count == 1, let disk, let bytes = await disk.read(identity: diskIdentity(first)),
      bytes.count >= geometry.expectedLength(of: first.index, size: first.version.size)
    {
      return (bytes, true)
    }
    let bytes = try await backend.read(
      first.path, offset: geometry.start(of: first.index), length: keys.count * geometry.blockSize,
      expectedSize: first.version.size)
    state.withLock { $0.statistics.remoteRequests += 1 }
    return (bytes, false)
  }

  /// Each key's block within `bytes`, checked to hold all its version promises. The backend
  /// checks truncation already; this makes "never cache a short block" hold here too.
  private func cut(_ bytes: [UInt8], into keys: [BlockKey]) throws -> [(
    key: BlockKey, bytes: BlockBytes
  )] {
    let runStart = geometry.start(of: keys[0].index)
    return try keys.map { key in
      let from = Int(geometry.start(of: key.index) - runStart)
      let block = bytes[min(from, bytes.count)..<min(from + geometry.blockSize, bytes.count)]
      let expected = geometry.expectedLength(of: key.index, size: key.version.size)
      guard block.count >= expected else {
        logger.error(
          "short block \(key): expected \(expected) bytes, got \(block.count); not cached")
        throw RemoteError(
          errno: EIO, "read \(key.path): expected \(expected) bytes, got \(block.count)")
      }
      return (key, block)
    }
  }

  /// Stores fetched blocks: their reservations become one stored buffer.
  private func store(_ blocks: [(key: BlockKey, bytes: BlockBytes)], prefetch: Bool, fromDisk: Bool)
  {
    state.withLock { state in
      for block in blocks { state.fetches[block.key] = nil }
      state.memory.release(blocks.count * geometry.blockSize, prefetch: prefetch)
      state.memory.insert(blocks)
      if fromDisk {
        state.statistics.diskHits += blocks.count
      } else {
        state.statistics.remoteBlocks += blocks.count
      }
    }
    if !fromDisk, let disk {
      for block in blocks { disk.store(block.bytes, identity: diskIdentity(block.key)) }
    }
  }

  /// A fetch failed: nothing is stored, the next request fetches again.
  private func fail(_ keys: [BlockKey], prefetch: Bool) {
    state.withLock { state in
      for key in keys { state.fetches[key] = nil }
      state.memory.release(keys.count * geometry.blockSize, prefetch: prefetch)
      state.statistics.failedFetches += keys.count
    }
  }

  private func diskIdentity(_ key: BlockKey) -> String {
    DiskBlockFormat.identity(
      of: key, namespace: configuration.namespace, blockSize: geometry.blockSize)
  }
}
