/// The bytes of one block: a slice of the buffer its fetch filled. One ranged GET may fill
/// several consecutive blocks; they share its buffer and are never copied apart.
public typealias BlockBytes = ArraySlice<UInt8>

/// Blocks in memory within a byte budget that covers both stored buffers and fetches in flight.
///
/// A fetch reserves its blocks' bytes before it starts and turns the reservation into a stored
/// buffer (or releases it) when it ends, so memory is accounted for before it is allocated. The
/// blocks of one buffer are stored, kept and evicted together, so what is counted is what is
/// held: a buffer is freed only when all its blocks go.
/// Invariant: `storedBytes` is the sum of the stored buffers' block bytes, and
/// `storedBytes + reservedBytes <= budget`, except for demand reservations that eviction could
/// not cover (bounded by the reads in flight times the block size).
/// Not thread-safe: `BlockCache` keeps it inside its lock.
struct MemoryBlockStore {
  let budget: Int
  /// The most that prefetches may hold reserved at once, so demand reads always find room.
  let prefetchLimit: Int
  private struct Buffer {
    var keys: [BlockKey]
    var bytes: Int
  }
  private var blocks: [BlockKey: (bytes: BlockBytes, buffer: UInt64)] = [:]
  private var buffers: [UInt64: Buffer] = [:]
  private var recency = RecencyList<UInt64>()
  private var nextBuffer: UInt64 = 0
  private(set) var storedBytes = 0
  private(set) var reservedBytes = 0
  private(set) var prefetchReservedBytes = 0
  private(set) var evictions = 0

  init(budget: Int, prefetchLimit: Int) {
    self.budget = max(0, budget)
    self.prefetchLimit = max(0, min(prefetchLimit, budget))
  }

  var blockCount: Int { blocks.count }

  func contains(_ key: BlockKey) -> Bool { blocks[key] != nil }

  /// The block; its buffer is now the most recently used.
  mutating func block(_ key: BlockKey) -> BlockBytes? {
    guard let entry = blocks[key] else { return nil }
    recency.touch(entry.buffer)
    return entry.bytes
  }

  /// Reserves `bytes` for a demand fetch, evicting the least recently used buffers to make room.
  /// Always succeeds: a read that must be answered is never refused for memory.
  mutating func reserveForDemand(_ bytes: Int) {
    evict(toFit: bytes)
    reservedBytes += bytes
  }

  /// Reserves `bytes` for a prefetch if the prefetch share and the budget allow it, evicting
  /// old buffers as needed; false (nothing reserved) otherwise.
  mutating func reserveForPrefetch(_ bytes: Int) -> Bool {
    guard prefetchReservedBytes + bytes <= prefetchLimit else { return false }
    evict(toFit: bytes)
    guard storedBytes + reservedBytes + bytes <= budget else { return false }
    reservedBytes += bytes
    prefetchReservedBytes += bytes
    return true
  }

  /// Ends a reservation made with `reserveForDemand` or `reserveForPrefetch`.
  mutating func release(_ bytes: Int, prefetch: Bool) {
    reservedBytes -= bytes
    if prefetch { prefetchReservedBytes -= bytes }
  }

  /// Stores the blocks of one buffer (replacing older copies) if they fit the budget.
  mutating func insert(_ entries: [(key: BlockKey, bytes: BlockBytes)]) {
    for entry in entries { remove(entry.key) }
    let total = entries.reduce(0) { $0 + $1.bytes.count }
    guard !entries.isEmpty, total <= budget else { return }
    evict(toFit: total)
    guard storedBytes + reservedBytes + total <= budget else { return }
    let id = nextBuffer
    nextBuffer += 1
    for entry in entries { blocks[entry.key] = (entry.bytes, id) }
    buffers[id] = Buffer(keys: entries.map(\.key), bytes: total)
    recency.touch(id)
    storedBytes += total
  }

  /// Drops one block (its buffer stays while it has others).
  mutating func remove(_ key: BlockKey) {
    guard let entry = blocks.removeValue(forKey: key) else { return }
    buffers[entry.buffer]?.bytes -= entry.bytes.count
    storedBytes -= entry.bytes.count
    if buffers[entry.buffer]?.keys.count == 1 {
      buffers[entry.buffer] = nil
      recency.remove(entry.buffer)
    } else {
      buffers[entry.buffer]?.keys.removeAll { $0 == key }
    }
  }

  /// Evicts least recently used buffers until `bytes` more fit, or nothing is left to evict.
  private mutating func evict(toFit bytes: Int) {
    while storedBytes + reservedBytes + bytes > budget, let oldest = recency.oldest {
      recency.remove(oldest)
      guard let buffer = buffers.removeValue(forKey: oldest) else { continue }
      for key in buffer.keys { blocks[key] = nil }
      storedBytes -= buffer.bytes
      evictions += 1
    }
  }
}
