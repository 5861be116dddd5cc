import Backend
import DataLayer
import Foundation
import Glibc
import Logging
import TestSupport
import XCTest

final class DiskCacheTests: XCTestCase {
  let blockSize = 4096
  let logger = Logger(label: "test")
  var folder: TemporaryDirectory!

  override func setUpWithError() throws {
    folder = try TemporaryDirectory(prefix: "disk-cache-test")
  }

  override func tearDown() {
    folder?.remove()
  }

  func makeCache(_ remote: CountingRemote, diskBlocks: Int = 64) throws -> BlockCache {
    try BlockCache(
      backend: remote,
      configuration: BlockCacheConfiguration(
        blockSize: blockSize, memoryBudget: 256 * blockSize, diskDirectory: folder.path + "/blocks",
        diskBudget: UInt64(diskBlocks * (blockSize + 200)), namespace: "http://sandbox"),
      logger: logger)
  }

  func key(_ size: Int, _ index: UInt64) -> BlockKey {
    BlockKey(path: "/dir/f", version: version(size), index: index)
  }

  func blockFiles() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: folder.path + "/blocks").filter {
      $0.hasSuffix(".block")
    }.sorted()
  }

  func testBlocksOutliveTheCacheThatFetchedThem() async throws {
    let content = pattern(blockSize * 3)
    let remote = CountingRemote(files: ["/dir/f": content])
    do {
      let first = try makeCache(remote)
      for index: UInt64 in 0..<3 { _ = try await first.bytes(key(content.count, index)) }
      await first.waitForDiskWrites()
    }
    XCTAssertEqual(remote.readCount, 3)
    XCTAssertEqual(try blockFiles().count, 3)

    // A remount: a new cache on the same folder, an empty memory.
    let second = try makeCache(remote)
    for index: UInt64 in 0..<3 {
      let bytes = try await second.bytes(key(content.count, index))
      XCTAssertEqual(bytes, Array(content[Int(index) * blockSize..<Int(index + 1) * blockSize]))
    }
    XCTAssertEqual(remote.readCount, 3)
    XCTAssertEqual(second.statistics.diskHits, 3)
  }

  func testTheDiskBudgetEvictsTheOldestBlocks() async throws {
    let content = pattern(blockSize * 6)
    let remote = CountingRemote(files: ["/dir/f": content])
    let cache = try makeCache(remote, diskBlocks: 2)
    for index: UInt64 in 0..<6 {
      _ = try await cache.bytes(key(content.count, index))
      await cache.waitForDiskWrites()
    }
    let sizes = try blockFiles().map {
      try FileManager.default.attributesOfItem(atPath: folder.path + "/blocks/" + $0)[.size] as! Int
    }
    XCTAssertEqual(sizes.count, 2)
    XCTAssertLessThanOrEqual(sizes.reduce(0, +), 2 * (blockSize + 200))
  }

  func testADamagedBlockFileIsDroppedAndFetchedAgain() async throws {
    let content = pattern(blockSize)
    let remote = CountingRemote(files: ["/dir/f": content])
    do {
      let first = try makeCache(remote)
      _ = try await first.bytes(key(content.count, 0))
      await first.waitForDiskWrites()
    }
    let file = folder.path + "/blocks/" + (try blockFiles()[0])
    let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
    try handle.seek(toOffset: 500)
    try handle.write(contentsOf: Data([0xFF, 0x00, 0xFF]))
    try handle.close()

    let second = try makeCache(remote)
    let fetched91 = try await second.bytes(key(content.count, 0))
    XCTAssertEqual(fetched91, content)
    XCTAssertEqual(remote.readCount, 2)
    XCTAssertEqual(second.statistics.diskHits, 0)
  }

  /// A cache folder that cannot be made fails with the local errno and names the folder.
  func testAFileWhereTheCacheFolderGoesIsALocalEEXIST() throws {
    XCTAssertTrue(FileManager.default.createFile(atPath: folder.path + "/blocks", contents: nil))
    XCTAssertThrowsError(try makeCache(CountingRemote())) { error in
      let local = error as? LocalError
      XCTAssertEqual(local?.errno, EEXIST, "\(error)")
      XCTAssertTrue(local?.description.contains(folder.path + "/blocks") ?? false, "\(error)")
    }
  }

  func testOneFolderServesOneMountAtATime() throws {
    let remote = CountingRemote()
    let first = try makeCache(remote)
    XCTAssertThrowsError(try makeCache(remote)) { error in
      XCTAssertEqual((error as? LocalError)?.errno, EBUSY, "\(error)")
    }
    withExtendedLifetime(first) {}
  }
}
