import Backend
import Synchronization

/// Reads through the block cache, prefetching ahead of sequential readers.
///
/// Each open handle has its own `ReadPattern`; a read first starts the fetches of its own blocks,
/// then asks the cache to prefetch the blocks of the handle's window (parallel ranged GETs, one
/// per block), then waits for its blocks only. The cache's budget bounds memory however many
/// files are open: prefetches it refuses are asked again on the handle's next read.
///
/// Invariant per handle: blocks `[runStart..<prefetchedThrough)` of its version were cached or in
/// flight when last asked; the next prefetch starts at `prefetchedThrough`.
public final class PrefetchingReader: FileReader {
  public let cache: BlockCache
  private let backend: any RemoteFilesystem
  private let handles = Mutex<[UInt64: HandleState]>([:])
  private let directReads = Atomic<Int>(0)

  private struct HandleState {
    var path: String
    var version: RemoteFileVersion
    var pattern: ReadPattern
    var prefetchedThrough: UInt64 = 0
  }

  public init(cache: BlockCache, backend: any RemoteFilesystem) {
    self.cache = cache
    self.backend = backend
  }

  private var geometry: BlockGeometry { cache.geometry }

  /// Reads `length` bytes at `offset` of `path` for `handle`, whose version was taken at open.
  /// Fewer bytes only at the end of the file.
  public func read(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int, handle: UInt64
  ) async throws -> ArraySlice<UInt8> {
    guard length > 0 else { return [] }
    // Size 0: empty, or a pseudo-file whose size is unknown; nothing to cut into blocks.
    guard version.size > 0 else {
      return ArraySlice(
        try await backend.read(path, offset: offset, length: length, expectedSize: 0))
    }
    // Bytes past the version's last block exist only if the file grew: read them directly.
    let blocksEnd = geometry.start(of: geometry.blockCount(forSize: version.size))
    guard offset < blocksEnd else {
      return ArraySlice(
        try await backend.read(path, offset: offset, length: length, expectedSize: version.size))
    }
    let requestedEnd = offset + UInt64(length)
    let end = min(requestedEnd, blocksEnd)
    let needed = geometry.indices(from: offset, to: end)
    let keys = needed.map { BlockKey(path: path, version: version, index: $0) }
    let ahead = record(path, version: version, offset: offset, length: length, handle: handle)
    if ahead == 0, isSmallRandomRead(length: length, of: version), !cache.holdsAny(of: keys) {
      return try await readDirectly(path, version: version, offset: offset, length: length)
    }
    // The read's own blocks are asked for before its prefetches, so they go out first.
    let pending = keys.map { cache.request($0) }
    prefetch(path, version: version, window: ahead, after: needed, handle: handle)
    var blocks: [BlockBytes] = []
    for block in pending { blocks.append(try await block.bytes()) }
    let head = assemble(blocks, of: needed, from: offset, to: end)
    guard requestedEnd > blocksEnd, let last = blocks.last, last.count == geometry.blockSize else {
      return head
    }
    // The last block was full, so the file grew: the rest comes straight from the remote.
    return head
      + (try await backend.read(
        path, offset: blocksEnd, length: Int(requestedEnd - blocksEnd), expectedSize: 0))
  }

  /// Bytes `[offset, end)` out of `blocks`, the blocks `needed` in order: a slice of the cached
  /// buffer when one block holds them (no copy). A block shorter than a full one is the end of
  /// the file.
  private func assemble(
    _ blocks: [BlockBytes], of needed: Range<UInt64>, from offset: UInt64, to end: UInt64
  ) -> ArraySlice<UInt8> {
    var result: [UInt8] = []
    for (index, bytes) in zip(needed, blocks) {
      let blockStart = geometry.start(of: index)
      let from = bytes.startIndex + Int(max(offset, blockStart) - blockStart)
      let to = min(bytes.startIndex + Int(end - blockStart), bytes.endIndex)
      if blocks.count == 1 { return bytes[min(from, to)..<to] }
      if result.isEmpty { result.reserveCapacity(Int(end - offset)) }
      if from < to { result += bytes[from..<to] }
      if bytes.count < geometry.blockSize { break }
    }
    return ArraySlice(result)
  }

  /// Whether a read is small against its file's blocks: for a reader jumping around a large file
  /// (databases, archives, `fio --rw=randread`), a whole block per read moves up to 256 times
  /// the bytes asked for, and its latency with them. Small files are still read in blocks, as
  /// their next random read likely falls in the same block.
  private func isSmallRandomRead(length: Int, of version: RemoteFileVersion) -> Bool {
    // Without prefetch every read has window 0, random or not: blocks it is.
    cache.configuration.initialPrefetch > 0 && cache.configuration.maximumPrefetch > 0
      && length <= geometry.blockSize / 4
      && version.size >= UInt64(Self.directReadMinimumBlocks * geometry.blockSize)
  }

  static let directReadMinimumBlocks = 16
  private static let pageSize: UInt64 = 4096

  /// The page-aligned range around the read, straight from the remote and checked against the
  /// version's size like any fetch; not cached, since it is not a whole block.
  private func readDirectly(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int
  ) async throws -> ArraySlice<UInt8> {
    let start = offset / Self.pageSize * Self.pageSize
    let end = min(
      (offset + UInt64(length) + Self.pageSize - 1) / Self.pageSize * Self.pageSize,
      max(version.size, offset + UInt64(length)))
    let bytes = try await backend.read(
      path, offset: start, length: Int(end - start), expectedSize: version.size)
    directReads.add(1, ordering: .relaxed)
    let from = min(Int(offset - start), bytes.count)
    return bytes[from..<min(from + length, bytes.count)]
  }

  /// Reads answered by `readDirectly` (tests, statistics).
  public var directReadCount: Int { directReads.load(ordering: .relaxed) }

  /// Prefetches the first block of a file about to be read (the next file of a directory being
  /// read in order), within the cache's prefetch share.
  public func prefetchStart(of path: String, version: RemoteFileVersion) {
    guard version.size > 0 else { return }
    cache.prefetch(CollectionOfOne(BlockKey(path: path, version: version, index: 0)))
  }

  /// Forgets the handle's read pattern (at release).
  public func release(handle: UInt64) {
    _ = handles.withLock { $0.removeValue(forKey: handle) }
  }

  /// Records the read in the handle's pattern; returns the window to fetch ahead (0: a random
  /// read).
  private func record(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int, handle: UInt64
  ) -> UInt64 {
    // One reader's window stays within a quarter of the budget, so what it prefetches is not
    // evicted before it gets there.
    let window = UInt64(
      min(cache.configuration.maximumPrefetch, cache.configuration.memoryBudget / 4))
    let initial = UInt64(cache.configuration.initialPrefetch)
    return handles.withLock { handles in
      var state =
        handles[handle]
        ?? HandleState(
          path: path, version: version,
          pattern: ReadPattern(initialWindow: initial, maximumWindow: window))
      if state.path != path || state.version != version {
        // Renamed while open, or a new version: blocks asked for before are another key.
        state.path = path
        state.version = version
        state.prefetchedThrough = 0
      }
      let ahead = state.pattern.record(offset: offset, length: length)
      handles[handle] = state
      return ahead
    }
  }

  /// Asks the cache for the blocks of the handle's window not asked for yet.
  private func prefetch(
    _ path: String, version: RemoteFileVersion, window ahead: UInt64, after needed: Range<UInt64>,
    handle: UInt64
  ) {
    let blockCount = geometry.blockCount(forSize: version.size)
    handles.withLock { handles in
      guard var state = handles[handle], state.path == path, state.version == version else {
        return
      }
      defer { handles[handle] = state }
      guard ahead > 0 else {
        state.prefetchedThrough = needed.upperBound
        return
      }
      let frontier = state.pattern.frontier ?? needed.upperBound
      let target = min(geometry.blockCount(forSize: frontier + ahead), blockCount)
      let first = max(state.prefetchedThrough, needed.upperBound)
      // Refill in whole runs (one GET each) unless the reader is about to run dry or the window
      // reaches the end of the file: one block at a time would mean one GET per block.
      let run = UInt64(cache.runBlocks)
      if first < target
        && (target - first >= run || target == blockCount || first < needed.upperBound + run)
      {
        let keys = (first..<target).lazy.map { BlockKey(path: path, version: version, index: $0) }
        state.prefetchedThrough = first + UInt64(cache.prefetch(keys))
      }
    }
  }
}
