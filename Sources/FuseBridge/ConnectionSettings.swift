import CFuse
import Logging

/// What we ask of the kernel at FUSE_INIT.
enum ConnectionSettings {
  /// 1 MiB writes (libfuse turns this into max_pages = 256).
  static let maxWrite: UInt32 = 1 << 20

  static func negotiate(
    _ connection: UnsafeMutablePointer<fuse_conn_info>, readaheadBytes: UInt32, logger: Logger
  ) {
    let capable = connection.pointee.capable
    var want = connection.pointee.want
    // Several reads of one file in flight at once (readahead runs in parallel).
    want |= SANDBOX_FUSE_CAP_ASYNC_READ & capable
    // O_TRUNC reaches open, so an open-for-rewrite does not download the old content first.
    want |= SANDBOX_FUSE_CAP_ATOMIC_O_TRUNC & capable
    // Listings carry attributes: `ls -l` and `find` need no stat per entry.
    want |= SANDBOX_FUSE_CAP_READDIRPLUS & capable
    want &= ~SANDBOX_FUSE_CAP_READDIRPLUS_AUTO
    want |= SANDBOX_FUSE_CAP_PARALLEL_DIROPS & capable
    // Data is copied through our buffers anyway; splicing buys nothing here.
    want &=
      ~(SANDBOX_FUSE_CAP_SPLICE_READ | SANDBOX_FUSE_CAP_SPLICE_WRITE
      | SANDBOX_FUSE_CAP_SPLICE_MOVE)
    // Write-back caching would reorder writes against our flush-time uploads; not yet.
    want &= ~SANDBOX_FUSE_CAP_WRITEBACK_CACHE
    // Close-to-open instead: each open keeps or drops the pages by version. The kernel's own
    // check drops them whenever a reply shows a new mtime, also after our own upload of the
    // file it just wrote (512 MiB: 30-120 ms at the next open). Size changes still drop them.
    want &= ~SANDBOX_FUSE_CAP_AUTO_INVAL_DATA
    connection.pointee.want = want
    connection.pointee.max_write = maxWrite
    // The kernel proposed its current window (128 KiB); asking more only works together with the
    // bdi setting written at mount (KernelReadahead), as the kernel keeps the smaller of the two.
    if readaheadBytes > 0 { connection.pointee.max_readahead = readaheadBytes }
    // Readahead requests are "background" requests; allow many in flight.
    connection.pointee.max_background = 64
    connection.pointee.congestion_threshold = 48
    logger.debug(
      "FUSE \(connection.pointee.proto_major).\(connection.pointee.proto_minor): max_write \(connection.pointee.max_write), max_readahead \(connection.pointee.max_readahead), want 0x\(String(want, radix: 16))"
    )
  }
}
