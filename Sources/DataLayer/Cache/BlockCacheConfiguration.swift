/// Sizes for the block cache and the prefetcher (the CLI's `--block-size`, `--memory-cache`,
/// `--cache-dir`, `--cache-size` and `--prefetch-max`).
public struct BlockCacheConfiguration: Sendable, Equatable {
  /// Bytes per block: the unit of fetching and caching.
  public var blockSize: Int
  /// Bytes of blocks held in memory, fetches in flight included.
  public var memoryBudget: Int
  /// The share of `memoryBudget` prefetches may hold reserved at once (the rest is for reads
  /// that must be answered now, and for blocks already read).
  public var prefetchShare: Double
  /// A folder for blocks that outlive the mount, or nil for memory only.
  public var diskDirectory: String?
  /// Bytes of block files kept in `diskDirectory`.
  public var diskBudget: UInt64
  /// Names the remote in disk block identities, so two sandboxes never share blocks.
  public var namespace: String
  /// The first prefetch window of a sequential reader, doubled on each sequential read.
  public var initialPrefetch: Int
  /// The largest prefetch window per open file.
  public var maximumPrefetch: Int
  /// Bytes one ranged GET fetches when prefetching consecutive blocks (a whole number of
  /// blocks). Measured on loopback: 1 MiB requests cap even curl at about 1 GB/s, 4 MiB and up
  /// reach 1.8 GB/s and halve the server's CPU per byte.
  public var prefetchRunSize: Int

  public init(
    blockSize: Int = 1 << 20, memoryBudget: Int = 256 << 20, prefetchShare: Double = 0.5,
    diskDirectory: String? = nil, diskBudget: UInt64 = 4 << 30, namespace: String = "",
    initialPrefetch: Int = 1 << 20, maximumPrefetch: Int = 64 << 20,
    prefetchRunSize: Int = 8 << 20
  ) {
    self.blockSize = blockSize
    self.memoryBudget = memoryBudget
    self.prefetchShare = prefetchShare
    self.diskDirectory = diskDirectory
    self.diskBudget = diskBudget
    self.namespace = namespace
    self.initialPrefetch = initialPrefetch
    self.maximumPrefetch = maximumPrefetch
    self.prefetchRunSize = prefetchRunSize
  }
}
