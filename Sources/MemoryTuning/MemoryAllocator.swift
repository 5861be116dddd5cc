import Glibc

/// Both daemons move file data in 1 MiB buffers (the mount's cached blocks and 8 MiB prefetch
/// runs; the agent's read-ahead chunks), allocated and freed all the time. glibc serves such
/// sizes with fresh mmaps, or trims its heap after frees, so each new buffer page-faults its
/// memory in again: a third of the mount's CPU during a cold sequential read, and 0.59 against
/// 0.42 CPU-s per GiB the agent serves (measured with perf and /proc). Keeping large chunks in
/// the heap lets freed buffers be reused; the block cache's budget and the agent's two chunks
/// per response bound how much memory that is. One arena: buffers filled on one thread and
/// freed on another are then reused, not kept per thread (measured: 60 MiB less peak RSS in the
/// mount during a 1 GiB read).
public enum MemoryAllocator {
  /// `mallopt` parameters from glibc's malloc.h (not part of Swift's Glibc module).
  private static let trimThreshold: Int32 = -1
  private static let mmapThreshold: Int32 = -3
  private static let arenaMaximum: Int32 = -8

  public static func keepLargeChunksForReuse() {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(nil, "mallopt") else { return }  // nil: RTLD_DEFAULT
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    _ = mallopt(mmapThreshold, 32 << 20)  // glibc's maximum
    _ = mallopt(trimThreshold, 512 << 20)
    _ = mallopt(arenaMaximum, 1)
  }
}
