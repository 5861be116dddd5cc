import Backend
import DataLayer
import Foundation
import Glibc
import Logging
import TestSupport
import XCTest

/// The reader for backends without ranged reads, over the in-memory backend presented as one
/// (and `CountingRemote` where a download must be slow or break its contract).
final class WholeFileReaderTests: XCTestCase {
  private var folder: TemporaryDirectory!
  private let logger = Logger(label: "test")

  override func setUp() async throws {
    folder = try TemporaryDirectory(prefix: "whole-file")
  }

  override func tearDown() {
    folder?.remove()
  }

  private var wholeFileBackend: InMemoryRemoteFilesystem {
    var capabilities = InMemoryRemoteFilesystem.allCapabilities
    capabilities.rangedReads = false
    return InMemoryRemoteFilesystem(capabilities: capabilities)
  }

  private func makeReader(
    _ backend: any RemoteFilesystem, budget: UInt64 = 1 << 30
  ) throws -> WholeFileReader {
    try WholeFileReader(
      backend: backend,
      configuration: WholeFileConfiguration(parentDirectory: folder.path, budget: budget),
      logger: logger)
  }

  private func files(in reader: WholeFileReader) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: reader.directory)) ?? []
  }

  func testTheMountPicksItForABackendWithoutRangedReads() async throws {
    let backend = wholeFileBackend
    let reader = try makeFileReader(
      backend: backend, capabilities: await backend.capabilities(),
      blockCache: BlockCacheConfiguration(),
      wholeFiles: WholeFileConfiguration(parentDirectory: folder.path), logger: logger)
    XCTAssertTrue(reader is WholeFileReader)
    reader.shutdown()
  }

  func testManyReadsCostOneDownload() async throws {
    let backend = wholeFileBackend
    let content = pattern(100_000)
    backend.put("/f", content)
    let reader = try makeReader(backend)
    let version = try await backend.attributes(of: "/f").version
    backend.resetCalls()
    var seen: [UInt8] = []
    for offset in stride(from: 0, to: content.count, by: 4096) {
      seen += try await reader.bytes(
        "/f", version: version, offset: UInt64(offset), length: 4096, handle: 1)
    }
    XCTAssertEqual(seen, content)
    let past = try await reader.bytes(
      "/f", version: version, offset: UInt64(content.count + 5), length: 10, handle: 2)
    XCTAssertEqual(past, [])
    XCTAssertEqual(backend.calls("download"), 1)
    XCTAssertEqual(backend.calls("read"), 0)
    XCTAssertEqual(reader.stored.bytes, UInt64(content.count))
    XCTAssertEqual(files(in: reader), [], "a copy is unlinked once open")

    reader.shutdown()
    XCTAssertFalse(FileManager.default.fileExists(atPath: reader.directory))
    XCTAssertEqual(reader.stored.files, 0)
  }

  func testANewVersionDownloadsAgain() async throws {
    let backend = wholeFileBackend
    backend.put("/f", pattern(5000))
    let reader = try makeReader(backend)
    let first = try await backend.attributes(of: "/f").version
    _ = try await reader.bytes("/f", version: first, offset: 0, length: 10, handle: 1)
    let changed = pattern(6000, seed: 9)
    backend.put("/f", changed)
    let second = try await backend.attributes(of: "/f").version
    XCTAssertNotEqual(first, second)
    let bytes = try await reader.bytes("/f", version: second, offset: 0, length: 6000, handle: 2)
    XCTAssertEqual(bytes, changed)
    _ = try await reader.bytes("/f", version: second, offset: 100, length: 10, handle: 2)
    XCTAssertEqual(backend.calls("download"), 2)
    reader.shutdown()
  }

  func testAShortDownloadIsEIOAndALaterReadRetries() async throws {
    let backend = wholeFileBackend
    let content = pattern(50_000)
    backend.put("/f", content)
    let reader = try makeReader(backend)
    let version = try await backend.attributes(of: "/f").version
    backend.resetCalls()
    // The backend retries once: both answers cut short.
    backend.truncateAnswers(2)
    await assertRemoteError(EIO) {
      _ = try await reader.read("/f", version: version, offset: 0, length: 4096, handle: 1)
    }
    XCTAssertEqual(files(in: reader), [], "the partial file is gone")
    XCTAssertEqual(reader.stored.files, 0)
    XCTAssertEqual(reader.statistics.failedDownloads, 1)
    let bytes = try await reader.bytes(
      "/f", version: version, offset: 0, length: content.count, handle: 1)
    XCTAssertEqual(bytes, content)
    XCTAssertEqual(backend.calls("download"), 2)
    reader.shutdown()
  }

  /// A backend breaking its contract (a short body, no error): the reader's own check.
  func testAShortBodyTheBackendMissedIsNeverServed() async throws {
    let content = pattern(8192)
    let remote = CountingRemote(files: ["/f": content])
    remote.state.withLock { $0.shortBy = 100 }
    let reader = try makeReader(remote)
    for _ in 0..<2 {
      await assertRemoteError(EIO) {
        _ = try await reader.read(
          "/f", version: version(content.count), offset: 0, length: 10, handle: 1)
      }
    }
    XCTAssertEqual(remote.downloadCount, 2, "nothing was kept: each read downloads again")
    XCTAssertEqual(files(in: reader), [])
    remote.state.withLock { $0.shortBy = 0 }
    let bytes = try await reader.bytes(
      "/f", version: version(content.count), offset: 8000, length: 500, handle: 1)
    XCTAssertEqual(bytes, Array(content[8000...]))
    reader.shutdown()
  }

  func testADownloadBrokenOffLeavesNoPartialFile() async throws {
    let content = pattern(10_000)
    let remote = CountingRemote(files: ["/f": content])
    remote.state.withLock { $0.failuresToInject = 1 }
    let reader = try makeReader(remote)
    await assertRemoteError(EIO) {
      _ = try await reader.read(
        "/f", version: version(content.count), offset: 0, length: 10, handle: 1)
    }
    XCTAssertEqual(files(in: reader), [])
    XCTAssertEqual(reader.stored.files, 0)
    let bytes = try await reader.bytes(
      "/f", version: version(content.count), offset: 0, length: content.count, handle: 1)
    XCTAssertEqual(bytes, content)
    reader.shutdown()
  }

  func testConcurrentFirstReadsShareOneDownload() async throws {
    let content = pattern(64 * 1024)
    let remote = CountingRemote(files: ["/f": content], delay: .milliseconds(100))
    let reader = try makeReader(remote)
    let size = version(content.count)
    let pieces = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
      for index in 0..<8 {
        group.addTask {
          (
            index,
            try await reader.bytes(
              "/f", version: size, offset: UInt64(index * 8192), length: 8192,
              handle: UInt64(index))
          )
        }
      }
      return try await group.reduce(into: [Int: [UInt8]]()) { $0[$1.0] = $1.1 }
    }
    XCTAssertEqual((0..<8).flatMap { pieces[$0]! }, content)
    XCTAssertEqual(remote.downloadCount, 1)
    XCTAssertEqual(reader.statistics.sharedDownloads, 7)
    reader.shutdown()
  }

  func testTheLeastRecentlyReadCopiesGoBeyondTheBudget() async throws {
    let backend = wholeFileBackend
    for name in ["a", "b", "c"] { backend.put("/" + name, pattern(40_000)) }
    let reader = try makeReader(backend, budget: 100_000)
    for name in ["a", "b", "a", "c"] {
      let version = try await backend.attributes(of: "/" + name).version
      _ = try await reader.bytes("/" + name, version: version, offset: 0, length: 1, handle: 1)
    }
    // a, b, then c pushed out b, the least recently read.
    XCTAssertEqual(reader.stored.files, 2)
    XCTAssertEqual(reader.statistics.evictions, 1)
    XCTAssertEqual(backend.calls("download"), 3)
    let version = try await backend.attributes(of: "/b").version
    _ = try await reader.bytes("/b", version: version, offset: 0, length: 1, handle: 1)
    XCTAssertEqual(backend.calls("download"), 4)
    reader.shutdown()
  }

  /// Size 0 is unchecked (a pseudo-file reads what comes) and each open sees its own snapshot.
  func testSizeZeroFilesAreReadUncheckedOncePerOpen() async throws {
    let remote = CountingRemote(files: ["/proc/status": Array("state: running\n".utf8)])
    let reader = try makeReader(remote)
    let unknown = version(0)
    let first = try await reader.bytes(
      "/proc/status", version: unknown, offset: 0, length: 4096, handle: 1)
    XCTAssertEqual(first, Array("state: running\n".utf8))
    remote.state.withLock { $0.files["/proc/status"] = Array("state: sleeping\n".utf8) }
    let same = try await reader.bytes(
      "/proc/status", version: unknown, offset: 0, length: 4096, handle: 1)
    XCTAssertEqual(same, first, "one open reads one snapshot")
    reader.release(handle: 1)
    XCTAssertEqual(reader.stored.files, 0)
    let next = try await reader.bytes(
      "/proc/status", version: unknown, offset: 0, length: 4096, handle: 2)
    XCTAssertEqual(next, Array("state: sleeping\n".utf8))
    XCTAssertEqual(remote.downloadCount, 2)
    reader.shutdown()
  }

  func testTheNextSmallFileIsDownloadedAhead() async throws {
    let content = pattern(3000)
    let remote = CountingRemote(files: ["/next": content])
    let reader = try makeReader(remote)
    reader.prefetchStart(of: "/next", version: version(content.count))
    let bytes = try await reader.bytes(
      "/next", version: version(content.count), offset: 0, length: 3000, handle: 1)
    XCTAssertEqual(bytes, content)
    XCTAssertEqual(remote.downloadCount, 1)
    XCTAssertEqual(reader.statistics.downloads, 1)
    reader.shutdown()
  }
}
