import Backend
import DataLayer
import Logging
import XCTest

final class ReadPatternTests: XCTestCase {
  let mib: UInt64 = 1 << 20

  func testTheWindowDoublesOnSequentialReadsUpToTheCap() {
    var pattern = ReadPattern(initialWindow: mib, maximumWindow: 8 * mib)
    var windows: [UInt64] = []
    for read in 0..<6 {
      windows.append(pattern.record(offset: UInt64(read) * mib, length: Int(mib)))
    }
    XCTAssertEqual(windows, [1, 2, 4, 8, 8, 8].map { $0 * mib })
  }

  func testSmallJumpsWithinTheWindowKeepTheRun() {
    var pattern = ReadPattern(initialWindow: mib, maximumWindow: 16 * mib)
    for read in 0..<4 { _ = pattern.record(offset: UInt64(read) * mib, length: Int(mib)) }
    XCTAssertEqual(pattern.window, 8 * mib)
    // Readahead requests arriving out of order, a short re-read, a skip within the window.
    XCTAssertEqual(pattern.record(offset: 2 * mib, length: 4096), 16 * mib)
    XCTAssertEqual(pattern.record(offset: 10 * mib, length: Int(mib)), 16 * mib)
    XCTAssertEqual(pattern.frontier, 11 * mib)
  }

  func testAFarJumpIsRandomAndTheNextNearbyReadStartsOver() {
    var pattern = ReadPattern(initialWindow: mib, maximumWindow: 16 * mib)
    for read in 0..<4 { _ = pattern.record(offset: UInt64(read) * mib, length: Int(mib)) }
    XCTAssertEqual(pattern.record(offset: 500 * mib, length: 4096), 0)
    XCTAssertEqual(pattern.record(offset: 100 * mib, length: 4096), 0)
    XCTAssertEqual(pattern.record(offset: 100 * mib + 4096, length: 4096), mib)
    XCTAssertEqual(pattern.record(offset: 100 * mib + 8192, length: 4096), 2 * mib)
  }
}

final class PrefetchingReaderTests: XCTestCase {
  let blockSize = 4096
  let logger = Logger(label: "test")

  func makeReader(
    _ remote: CountingRemote, blocks: Int = 64, initial: Int = 4096, maximum: Int = 8 * 4096
  ) throws -> PrefetchingReader {
    let cache = try BlockCache(
      backend: remote,
      configuration: BlockCacheConfiguration(
        blockSize: blockSize, memoryBudget: blocks * blockSize, initialPrefetch: initial,
        maximumPrefetch: maximum),
      logger: logger)
    return PrefetchingReader(cache: cache, backend: remote)
  }

  /// Waits until no fetch is in flight.
  func settle(_ reader: PrefetchingReader) async throws {
    for _ in 0..<500 where reader.cache.memoryUse.reserved > 0 {
      try await Task.sleep(for: .milliseconds(2))
    }
  }

  func testReadsReturnTheFilesBytesAcrossBlocksAndAtItsEnd() async throws {
    let content = pattern(blockSize * 5 + 123)
    let remote = CountingRemote(files: ["/f": content])
    let reader = try makeReader(remote)
    let size = version(content.count)
    for (offset, length) in [
      (0, 10), (100, blockSize * 2), (blockSize * 5, 4096), (blockSize - 1, 2),
    ] {
      let bytes = try await reader.bytes(
        "/f", version: size, offset: UInt64(offset), length: length, handle: 1)
      XCTAssertEqual(bytes, Array(content[offset..<min(content.count, offset + length)]))
    }
    let past = try await reader.bytes(
      "/f", version: size, offset: UInt64(content.count + 10), length: 100, handle: 1)
    XCTAssertEqual(past, [])
  }

  func testASequentialReaderHasItsNextBlocksFetchedAhead() async throws {
    let content = pattern(blockSize * 32)
    let remote = CountingRemote(files: ["/f": content])
    let reader = try makeReader(remote)
    for index in 0..<4 {
      _ = try await reader.bytes(
        "/f", version: version(content.count), offset: UInt64(index * blockSize),
        length: blockSize, handle: 7)
    }
    try await settle(reader)
    // Windows 1, 2, 4, 8 blocks beyond a frontier of 4 blocks: blocks 0 up to 12 are fetched.
    XCTAssertEqual(remote.fetchedBlocks(of: "/f", blockSize: blockSize), Set(0..<12))
    let before = remote.fetchedBlocks(of: "/f", blockSize: blockSize).count
    for index in 4..<12 {
      _ = try await reader.bytes(
        "/f", version: version(content.count), offset: UInt64(index * blockSize),
        length: blockSize, handle: 7)
    }
    try await settle(reader)
    // Every read after the first found its block prefetched (cached or still in flight).
    let statistics = reader.cache.statistics
    XCTAssertEqual(statistics.memoryHits + statistics.sharedFetches, 11)
    // Still ahead of the reader, and no block fetched twice.
    XCTAssertGreaterThan(remote.fetchedBlocks(of: "/f", blockSize: blockSize).count, before)
    let blocks = remote.state.withLock { $0.reads.map { $0.length / blockSize } }.reduce(0, +)
    XCTAssertEqual(blocks, remote.fetchedBlocks(of: "/f", blockSize: blockSize).count)
  }

  func testRandomReadsFetchJustTheirBlocks() async throws {
    let content = pattern(blockSize * 64)
    let remote = CountingRemote(files: ["/f": content])
    let reader = try makeReader(remote)
    _ = try await reader.bytes(
      "/f", version: version(content.count), offset: 0, length: 1, handle: 3)
    try await settle(reader)
    let afterFirst = remote.readCount  // the first read starts a small window
    for index in [40, 9, 55, 20, 31] {
      _ = try await reader.bytes(
        "/f", version: version(content.count), offset: UInt64(index * blockSize + 5), length: 100,
        handle: 3)
    }
    try await settle(reader)
    XCTAssertEqual(remote.readCount, afterFirst + 5)
  }

  /// Blocks of 16 pages, so a page-sized fetch is told apart from a block fetch.
  let largeBlock = 64 << 10

  func makeLargeBlockReader(_ remote: CountingRemote) throws -> PrefetchingReader {
    let cache = try BlockCache(
      backend: remote,
      configuration: BlockCacheConfiguration(
        blockSize: largeBlock, memoryBudget: 16 * largeBlock, initialPrefetch: largeBlock,
        maximumPrefetch: largeBlock),
      logger: logger)
    return PrefetchingReader(cache: cache, backend: remote)
  }

  func testSmallRandomReadsOfALargeFileFetchJustTheirPages() async throws {
    let content = pattern(largeBlock * 32)
    let remote = CountingRemote(files: ["/big": content])
    let reader = try makeLargeBlockReader(remote)
    let cache = reader.cache
    let block = largeBlock
    let size = version(content.count)
    _ = try await reader.bytes("/big", version: size, offset: 0, length: 100, handle: 1)
    try await settle(reader)
    let blocksBefore = cache.statistics.remoteBlocks
    let readsBefore = remote.readCount
    // Unaligned and page-crossing: each fetch is the pages around the read, not its block.
    for (offset, length) in [
      (20 * block + 5000, 3000), (9 * block + 4000, 200), (30 * block, 4096),
    ] {
      let bytes = try await reader.bytes(
        "/big", version: size, offset: UInt64(offset), length: length, handle: 1)
      XCTAssertEqual(bytes, Array(content[offset..<(offset + length)]))
    }
    let lengths = remote.state.withLock { $0.reads.dropFirst(readsBefore).map(\.length) }
    XCTAssertEqual(lengths, [4096, 8192, 4096])
    XCTAssertEqual(reader.directReadCount, 3)
    XCTAssertEqual(cache.statistics.remoteBlocks, blocksBefore, "partial ranges are never cached")
    // A random read in a block the cache holds is served from it.
    _ = try await reader.bytes("/big", version: size, offset: 500, length: 10, handle: 1)
    XCTAssertEqual(remote.readCount, readsBefore + 3)
  }

  func testSmallRandomReadsOfASmallFileStillFetchWholeBlocks() async throws {
    let block = largeBlock
    let content = pattern(block * 8)
    let remote = CountingRemote(files: ["/small": content])
    let reader = try makeLargeBlockReader(remote)
    let size = version(content.count)
    _ = try await reader.bytes("/small", version: size, offset: 0, length: 100, handle: 1)
    _ = try await reader.bytes(
      "/small", version: size, offset: UInt64(6 * block + 10), length: 100, handle: 1)
    XCTAssertEqual(reader.directReadCount, 0)
  }

  func testMemoryStaysWithinTheBudgetWithManyOpenFiles() async throws {
    var files: [String: [UInt8]] = [:]
    for file in 0..<20 { files["/f\(file)"] = pattern(blockSize * 64, seed: UInt8(file)) }
    let remote = CountingRemote(files: files, delay: .milliseconds(1))
    let reader = try makeReader(remote, blocks: 16, maximum: 32 * blockSize)
    let blockSize = self.blockSize
    let contents = files
    let peak = try await withThrowingTaskGroup(of: Int.self) { group in
      for file in 0..<20 {
        group.addTask {
          var peak = 0
          for index in 0..<64 {
            let bytes = try await reader.bytes(
              "/f\(file)", version: version(64 * blockSize), offset: UInt64(index * blockSize),
              length: blockSize, handle: UInt64(file))
            XCTAssertEqual(
              bytes, Array(contents["/f\(file)"]![index * blockSize..<(index + 1) * blockSize]))
            let use = reader.cache.memoryUse
            peak = max(peak, use.stored + use.reserved)
          }
          return peak
        }
      }
      return try await group.reduce(0) { max($0, $1) }
    }
    // Prefetches stay in their share; only the 20 reads in flight may go past the budget.
    XCTAssertLessThanOrEqual(peak, (16 + 20) * blockSize)
    XCTAssertGreaterThan(reader.cache.statistics.prefetchesRefused, 0)
  }

  func testAPseudoFileOfSizeZeroIsReadDirectlyEveryTime() async throws {
    let remote = CountingRemote(files: ["/proc/x": Array("live".utf8)])
    let reader = try makeReader(remote)
    for _ in 0..<2 {
      let bytes = try await reader.bytes(
        "/proc/x", version: version(0), offset: 0, length: 4096, handle: 1)
      XCTAssertEqual(bytes, Array("live".utf8))
    }
    XCTAssertEqual(remote.readCount, 2)
  }
}
