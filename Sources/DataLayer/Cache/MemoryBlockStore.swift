/// Blocks in memory within a byte budget that covers both stored blocks and fetches in flight.
///
/// A fetch reserves its block's bytes before it starts and turns the reservation into a stored
/// block (or releases it) when it ends, so memory is accounted for before it is allocated.
/// Invariant: `storedBytes + reservedBytes <= budget`, except for demand reservations that could
/// not be covered by evicting (bounded by the number of reads in flight times the block size).
/// Not thread-safe: `BlockCache` keeps it inside its lock.
struct MemoryBlockStore {
  let budget: Int
  /// The most that prefetches may hold reserved at once, so demand reads always find room.
  let prefetchLimit: Int
  private var blocks: [BlockKey: [UInt8]] = [:]
  private var recency = RecencyList<BlockKey>()
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

  /// The block, now the most recently used.
  mutating func block(_ key: BlockKey) -> [UInt8]? {
    guard let block = blocks[key] else { return nil }
    recency.touch(key)
    return block
  }

  /// Reserves `bytes` for a demand fetch, evicting the least recently used blocks to make room.
  /// Always succeeds: a read that must be answered is never refused for memory.
  mutating func reserveForDemand(_ bytes: Int) {
    evict(toFit: bytes)
    reservedBytes += bytes
  }

  /// Reserves `bytes` for a prefetch if the prefetch share and the budget allow it, evicting
  /// old blocks as needed; false (nothing reserved) otherwise.
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

  /// Stores `block` (replacing any older copy) if it fits the budget after eviction.
  mutating func insert(_ block: [UInt8], for key: BlockKey) {
    remove(key)
    guard block.count <= budget else { return }
    evict(toFit: block.count)
    guard storedBytes + reservedBytes + block.count <= budget else { return }
    blocks[key] = block
    recency.touch(key)
    storedBytes += block.count
  }

  mutating func remove(_ key: BlockKey) {
    guard let old = blocks.removeValue(forKey: key) else { return }
    recency.remove(key)
    storedBytes -= old.count
  }

  /// Evicts least recently used blocks until `bytes` more fit, or nothing is left to evict.
  private mutating func evict(toFit bytes: Int) {
    while storedBytes + reservedBytes + bytes > budget, let oldest = recency.oldest {
      remove(oldest)
      evictions += 1
    }
  }
}
