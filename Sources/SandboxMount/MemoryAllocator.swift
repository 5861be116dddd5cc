import Glibc

/// Cached blocks are 1 MiB (prefetch runs 8 MiB) arrays, allocated and freed all the time.
/// glibc serves such sizes with fresh mmaps, or trims its heap after frees, so each new block
/// page-faults its memory in again: a third of the daemon's CPU during a cold sequential read
/// (measured with perf). Keeping large chunks in the heap lets freed blocks be reused; the block
/// cache's budget bounds how much memory that is. One arena: buffers filled on the curl thread
/// and freed on the pool's are then reused, not kept per thread (measured: 60 MiB less peak RSS
/// during a 1 GiB read).
enum MemoryAllocator {
  /// `mallopt` parameters from glibc's malloc.h (not part of Swift's Glibc module).
  private static let trimThreshold: Int32 = -1
  private static let mmapThreshold: Int32 = -3
  private static let arenaMaximum: Int32 = -8

  static func keepLargeChunksForReuse() {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(nil, "mallopt") else { return }  // nil: RTLD_DEFAULT
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    _ = mallopt(mmapThreshold, 32 << 20)  // glibc's maximum
    _ = mallopt(trimThreshold, 512 << 20)
    _ = mallopt(arenaMaximum, 1)
  }
}
