import Backend
import DataLayer
import Glibc
import Logging
import TestSupport
import XCTest

final class BlockCacheTests: XCTestCase {
  let blockSize = 4096
  let logger = Logger(label: "test")

  func makeCache(
    _ remote: CountingRemote, blocks: Int = 16, prefetchShare: Double = 0.5,
    disk: String? = nil, diskBlocks: Int = 64
  ) throws -> BlockCache {
    try BlockCache(
      backend: remote,
      configuration: BlockCacheConfiguration(
        blockSize: blockSize, memoryBudget: blocks * blockSize, prefetchShare: prefetchShare,
        diskDirectory: disk, diskBudget: UInt64(diskBlocks * (blockSize + 200))),
      logger: logger)
  }

  func key(_ path: String, _ size: Int, _ index: UInt64, mtime: Int64 = 1_700_000_000) -> BlockKey {
    BlockKey(path: path, version: version(size, mtime: mtime), index: index)
  }

  func testABlockIsFetchedOnceThenServedFromMemory() async throws {
    let content = pattern(3 * blockSize + 100)
    let remote = CountingRemote(files: ["/f": content])
    let cache = try makeCache(remote)
    let first = try await cache.bytes(key("/f", content.count, 1))
    let again = try await cache.bytes(key("/f", content.count, 1))
    XCTAssertEqual(first, Array(content[blockSize..<2 * blockSize]))
    XCTAssertEqual(again, first)
    XCTAssertEqual(remote.readCount, 1)
    XCTAssertEqual(cache.statistics.memoryHits, 1)
    // The last block is short: the file ends there.
    let last = try await cache.bytes(key("/f", content.count, 3))
    XCTAssertEqual(last, Array(content[(3 * blockSize)...]))
  }

  func testConcurrentReadersOfOneBlockShareOneFetch() async throws {
    let content = pattern(blockSize * 2)
    let remote = CountingRemote(files: ["/f": content], delay: .milliseconds(200))
    let cache = try makeCache(remote)
    let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
      let key = key("/f", content.count, 0)
      for _ in 0..<8 { group.addTask { try await cache.bytes(key) } }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    XCTAssertEqual(results.count, 8)
    XCTAssertTrue(results.allSatisfy { $0 == Array(content[0..<blockSize]) })
    XCTAssertEqual(remote.readCount, 1)
    XCTAssertEqual(cache.statistics.sharedFetches, 7)
  }

  func testLeastRecentlyUsedBlocksAreEvictedWithinTheBudget() async throws {
    let content = pattern(blockSize * 10)
    let remote = CountingRemote(files: ["/f": content])
    let cache = try makeCache(remote, blocks: 3)
    for index: UInt64 in [0, 1, 2, 0, 3] {
      _ = try await cache.bytes(key("/f", content.count, index))
      XCTAssertLessThanOrEqual(cache.memoryUse.stored, 3 * blockSize)
    }
    XCTAssertEqual(remote.readCount, 4)
    // 1 was the least recently used when 3 came in; 0 was touched and stays.
    _ = try await cache.bytes(key("/f", content.count, 0))
    XCTAssertEqual(remote.readCount, 4)
    _ = try await cache.bytes(key("/f", content.count, 1))
    XCTAssertEqual(remote.readCount, 5)
    XCTAssertEqual(cache.memoryUse.reserved, 0)
  }

  func testAnotherVersionOfAFileIsFetchedAnew() async throws {
    let old = pattern(blockSize, seed: 1)
    let remote = CountingRemote(files: ["/f": old])
    let cache = try makeCache(remote)
    let fetched77 = try await cache.bytes(key("/f", old.count, 0))
    XCTAssertEqual(fetched77, old)
    let new = pattern(blockSize, seed: 2)
    remote.state.withLock { $0.files["/f"] = new }
    // Same size, another mtime: another version, so the old block must not be served.
    let fetched82 = try await cache.bytes(key("/f", new.count, 0, mtime: 1_700_000_001))
    XCTAssertEqual(fetched82, new)
    XCTAssertEqual(remote.readCount, 2)
    // A handle still holding the old version keeps its consistent old block.
    let fetched86 = try await cache.bytes(key("/f", old.count, 0))
    XCTAssertEqual(fetched86, old)
  }

  func testAFailedFetchIsNotCached() async throws {
    let content = pattern(blockSize)
    let remote = CountingRemote(files: ["/f": content])
    remote.state.withLock { $0.failuresToInject = 1 }
    let cache = try makeCache(remote)
    do {
      _ = try await cache.bytes(key("/f", content.count, 0))
      XCTFail("the injected failure should surface")
    } catch let error as RemoteError {
      XCTAssertEqual(error.errno, EIO)
    }
    let fetched101 = try await cache.bytes(key("/f", content.count, 0))
    XCTAssertEqual(fetched101, content)
    XCTAssertEqual(remote.readCount, 2)
    XCTAssertEqual(cache.memoryUse.reserved, 0)
  }

  func testAShortFetchIsNeverCached() async throws {
    let content = pattern(blockSize * 2)
    let remote = CountingRemote(files: ["/f": content])
    remote.state.withLock { $0.shortBy = 10 }
    let cache = try makeCache(remote)
    do {
      _ = try await cache.bytes(key("/f", content.count, 1))
      XCTFail("a short block must be EIO")
    } catch let error as RemoteError {
      XCTAssertEqual(error.errno, EIO)
    }
    remote.state.withLock { $0.shortBy = 0 }
    let fetched119 = try await cache.bytes(key("/f", content.count, 1))
    XCTAssertEqual(fetched119, Array(content[blockSize...]))
    XCTAssertEqual(remote.readCount, 2)
  }

  func testConsecutivePrefetchesShareOneRangedRequestPerRun() async throws {
    let content = pattern(blockSize * 10 + 7)
    let remote = CountingRemote(files: ["/f": content])
    let cache = try BlockCache(
      backend: remote,
      configuration: BlockCacheConfiguration(
        blockSize: blockSize, memoryBudget: 32 * blockSize, prefetchRunSize: 4 * blockSize),
      logger: logger)
    _ = try await cache.bytes(key("/f", content.count, 2))
    XCTAssertEqual(cache.prefetch((0..<11).map { key("/f", content.count, UInt64($0)) }), 11)
    for index in 0..<11 {
      let bytes = try await cache.bytes(key("/f", content.count, UInt64(index)))
      XCTAssertEqual(
        bytes, Array(content[index * blockSize..<min(content.count, (index + 1) * blockSize)]))
    }
    // Block 2 was cached: runs 0-1, then 3-6, 7-10 (the last one short: the end of the file).
    let reads = remote.state.withLock {
      $0.reads.map { [Int($0.offset) / blockSize, $0.length / blockSize] }
    }
    // The runs are concurrent tasks, so their GETs may be recorded in either order.
    XCTAssertEqual(reads.first, [2, 1])
    XCTAssertEqual(Set(reads), [[2, 1], [0, 2], [3, 4], [7, 4]])
    XCTAssertEqual(reads.count, 4)
  }

  func testAShortRunCachesNoneOfItsBlocks() async throws {
    let content = pattern(blockSize * 4)
    let remote = CountingRemote(files: ["/f": content])
    remote.state.withLock { $0.shortBy = 1 }
    let cache = try BlockCache(
      backend: remote,
      configuration: BlockCacheConfiguration(
        blockSize: blockSize, memoryBudget: 32 * blockSize, prefetchRunSize: 4 * blockSize),
      logger: logger)
    cache.prefetch((0..<4).map { key("/f", content.count, UInt64($0)) })
    do {
      _ = try await cache.bytes(key("/f", content.count, 3))
      XCTFail("the short last block must fail")
    } catch {}
    remote.state.withLock { $0.shortBy = 0 }
    try await Task.sleep(for: .milliseconds(50))
    XCTAssertEqual(cache.memoryUse.reserved, 0)
    let again = try await cache.bytes(key("/f", content.count, 3))
    XCTAssertEqual(again, Array(content.suffix(from: 3 * blockSize)))
  }

  func testPrefetchesStopAtTheirShareOfTheBudget() async throws {
    let content = pattern(blockSize * 40)
    let remote = CountingRemote(files: ["/f": content], delay: .milliseconds(100))
    let cache = try makeCache(remote, blocks: 8, prefetchShare: 0.5)
    let keys = (0..<20).map { key("/f", content.count, UInt64($0)) }
    XCTAssertEqual(cache.prefetch(keys), 4)
    XCTAssertEqual(cache.memoryUse.reserved, 4 * blockSize)
    XCTAssertEqual(cache.statistics.prefetchesRefused, 1)
    // A demand read is never refused, even with prefetches in flight.
    let fetched133 = try await cache.bytes(keys[10])
    XCTAssertEqual(fetched133, Array(content[10 * blockSize..<11 * blockSize]))
    for key in keys[0..<4] { _ = try await cache.bytes(key) }
    XCTAssertEqual(remote.fetchedBlocks(of: "/f", blockSize: blockSize), [0, 1, 2, 3, 10])
    XCTAssertLessThanOrEqual(cache.memoryUse.stored + cache.memoryUse.reserved, 8 * blockSize)
  }
}
