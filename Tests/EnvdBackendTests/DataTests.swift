import Backend
import EnvdBackend
import Foundation
import TestSupport
import XCTest

/// Ranged reads, downloads and uploads against a real agent, checked byte for byte on disk.
final class DataTests: XCTestCase {
  private var fixture: AgentFixture!
  private var backend: (any EnvdRemote)!
  private var local: TemporaryDirectory!

  override func setUp() async throws {
    fixture = try AgentFixture()
    backend = try await fixture.backend()
    local = try TemporaryDirectory(prefix: "envd-local")
  }

  override func tearDown() {
    fixture?.close()
    local?.remove()
  }

  func testReadRanges() async throws {
    let bytes = try fixture.write("/f", randomBytes: 10_000)
    let size = UInt64(bytes.count)
    var got = try await backend.read("/f", offset: 0, length: 100, expectedSize: size)
    XCTAssertEqual(got, Array(bytes[0..<100]))
    got = try await backend.read("/f", offset: 4321, length: 1000, expectedSize: size)
    XCTAssertEqual(got, Array(bytes[4321..<5321]))
    // Across the end: what is there.
    got = try await backend.read("/f", offset: 9_900, length: 4096, expectedSize: size)
    XCTAssertEqual(got, Array(bytes[9_900...]))
    // At and past the end: nothing.
    got = try await backend.read("/f", offset: 10_000, length: 10, expectedSize: size)
    XCTAssertEqual(got, [])
    got = try await backend.read("/f", offset: 50_000, length: 10, expectedSize: size)
    XCTAssertEqual(got, [])
    got = try await backend.read("/f", offset: 0, length: 0, expectedSize: size)
    XCTAssertEqual(got, [])
    // The whole file in one read bigger than it.
    got = try await backend.read("/f", offset: 0, length: 1 << 20, expectedSize: size)
    XCTAssertEqual(got, bytes)
  }

  func testReadEmptyFileAndErrors() async throws {
    try fixture.write("/empty", [])
    let empty = try await backend.read("/empty", offset: 0, length: 4096, expectedSize: 0)
    XCTAssertEqual(empty, [])
    try fixture.makeDirectory("/dir")
    await assertRemoteError(EISDIR) {
      try await self.backend.read("/dir", offset: 0, length: 10, expectedSize: 0)
    }
    await assertRemoteError(ENOENT) {
      try await self.backend.read("/gone", offset: 0, length: 10, expectedSize: 10)
    }
  }

  func testReadOfAFileTruncatedAfterStatIsEIO() async throws {
    _ = try fixture.write("/shrinks", randomBytes: 1 << 20)
    let size = try await backend.attributes(of: "/shrinks").size
    XCTAssertEqual(size, 1 << 20)
    truncate(fixture.path("/shrinks"), 100 << 10)
    let error = await assertRemoteError(EIO) {
      try await self.backend.read("/shrinks", offset: 0, length: 1 << 20, expectedSize: size)
    }
    XCTAssertTrue(
      error?.message.contains("expected 1048576 bytes, got 102400") == true,
      "\(String(describing: error))")
    // Wholly past the new end: 416 from the server, still short of what the stat promised.
    await assertRemoteError(EIO) {
      try await self.backend.read("/shrinks", offset: 500 << 10, length: 4096, expectedSize: size)
    }
    // Within what is left: fine.
    let head = try await backend.read("/shrinks", offset: 0, length: 4096, expectedSize: size)
    XCTAssertEqual(head.count, 4096)
    // Pseudo-file rule: size 0 skips the check.
    let any = try await backend.read("/shrinks", offset: 0, length: 1 << 20, expectedSize: 0)
    XCTAssertEqual(any.count, 100 << 10)
  }

  func testReadOfAFileThatGrewAfterStatIsFine() async throws {
    _ = try fixture.write("/grows", randomBytes: 100)
    let size = try await backend.attributes(of: "/grows").size
    let bytes = try fixture.write("/grows", randomBytes: 300)
    let got = try await backend.read("/grows", offset: 0, length: 4096, expectedSize: size)
    XCTAssertEqual(got, bytes)
  }

  /// A download onto a full local disk is this machine's ENOSPC, not the sandbox's EIO.
  func testDownloadOntoAFullLocalDiskIsALocalENOSPC() async throws {
    let disk = try SmallDisk(size: "1m")
    defer { disk.remove() }
    try fixture.write("/big", randomBytes(4 << 20))
    let error = await assertLocalError(ENOSPC) {
      try await self.backend.download("/big", expectedSize: 4 << 20, to: disk.path + "/copy")
    }
    XCTAssertTrue(error?.file.hasPrefix(disk.path) == true, "\(String(describing: error))")
  }

  func testDownloadMultiMiBFile() async throws {
    let bytes = try fixture.write("/big", randomBytes: 12 << 20 + 123)
    let target = local.path + "/big.copy"
    let written = try await backend.download("/big", expectedSize: UInt64(bytes.count), to: target)
    XCTAssertEqual(written, UInt64(bytes.count))
    XCTAssertEqual(try sha256(target), try sha256(fixture.path("/big")))
    // An empty file downloads as an empty file.
    try fixture.write("/empty", [])
    let none = try await backend.download("/empty", expectedSize: 0, to: local.path + "/empty")
    XCTAssertEqual(none, 0)
  }

  func testTruncatedDownloadLeavesNoPartialFile() async throws {
    _ = try fixture.write("/shrinks", randomBytes: 2 << 20)
    truncate(fixture.path("/shrinks"), 1 << 20)
    let target = local.path + "/partial"
    await assertRemoteError(EIO) {
      try await self.backend.download("/shrinks", expectedSize: 2 << 20, to: target)
    }
    XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: target)[.size] as? UInt64, 0)
    await assertRemoteError(ENOENT) {
      try await self.backend.download("/missing", expectedSize: 1, to: target)
    }
  }

  func testUploadRandomAndCompressibleFiles() async throws {
    // The agent logs each request's Content-Encoding at debug level: that shows what went gzip.
    fixture.close()
    fixture = try AgentFixture(arguments: ["--log-level", "debug"])
    for compress in [true, false] {
      let uploader = try await fixture.backend { $0.compressUploads = compress }
      // Random data never pays off; text does (then it goes gzip).
      let random = local.path + "/random"
      try Data(try randomBytes(6 << 20 + 7)).write(to: URL(fileURLWithPath: random))
      try await uploader.upload("/random-\(compress)", from: random)
      XCTAssertEqual(try sha256(fixture.path("/random-\(compress)")), try sha256(random))

      let text = local.path + "/text"
      let line = "the quick brown fox jumps over the lazy dog \(compress)\n"
      try String(repeating: line, count: 120_000).write(
        toFile: text, atomically: false, encoding: .utf8)
      try await uploader.upload("/text-\(compress)", from: text)
      XCTAssertEqual(try sha256(fixture.path("/text-\(compress)")), try sha256(text))
    }
    // Only the compressible upload with compression on went gzip; every upload was logged.
    let log = requestLog(of: "POST /files ")
    XCTAssertEqual(log.filter { $0.hasSuffix(" encoding=gzip") }.count, 1, "\(log)")
    XCTAssertEqual(log.filter { $0.contains(" encoding=") }.count, 1, "\(log)")
    XCTAssertEqual(log.count, 4, "\(log)")
  }

  /// The agent's debug lines for `request` ("METHOD /path "), once 4 arrived (stderr is collected
  /// asynchronously).
  private func requestLog(of request: String) -> [String] {
    var lines: [String] = []
    _ = fixture.agent.child.waitFor(timeout: 5) {
      lines = fixture.agent.child.standardError.split(separator: "\n").map(String.init)
        .filter { $0.contains(request) }
      return lines.count >= 4
    }
    return lines
  }

  func testUploadReplacesAndCreatesEmpty() async throws {
    try fixture.write("/f", Array("old content".utf8))
    let source = local.path + "/new"
    try Data("new".utf8).write(to: URL(fileURLWithPath: source))
    try await backend.upload("/f", from: source)
    XCTAssertEqual(try fixture.contents("/f"), Array("new".utf8))
    try await backend.upload("/f", from: nil)
    XCTAssertEqual(try fixture.contents("/f"), [])
    try await backend.upload("/created", from: nil)
    XCTAssertTrue(fixture.exists("/created"))
  }

  func testUploadErrors() async throws {
    try fixture.makeDirectory("/dir")
    try fixture.write("/file", [1])
    await assertRemoteError(ENOENT) { try await self.backend.upload("/missing/f", from: nil) }
    XCTAssertFalse(fixture.exists("/missing"))
    await assertRemoteError(ENOTDIR) { try await self.backend.upload("/file/f", from: nil) }
    await assertRemoteError(EISDIR) { try await self.backend.upload("/dir", from: nil) }
    // A missing local file is this machine's failure, not the sandbox's.
    await assertLocalError(ENOENT) {
      try await self.backend.upload("/x", from: self.local.path + "/no-such-local-file")
    }
  }

  func testThirtyTwoParallelReads() async throws {
    let chunk = 256 << 10
    let bytes = try fixture.write("/many", randomBytes: 32 * chunk)
    let backend = self.backend!
    let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
      for index in 0..<32 {
        group.addTask {
          let got = try await backend.read(
            "/many", offset: UInt64(index * chunk), length: chunk, expectedSize: UInt64(bytes.count)
          )
          return (index, got)
        }
      }
      var results: [Int: [UInt8]] = [:]
      for try await (index, got) in group { results[index] = got }
      return results
    }
    for index in 0..<32 {
      XCTAssertEqual(
        results[index], Array(bytes[(index * chunk)..<((index + 1) * chunk)]), "chunk \(index)")
    }
  }

  private func sha256(_ path: String) throws -> String {
    let result = try runCommand(["sha256sum", path])
    XCTAssertEqual(result.status, 0, result.error)
    return String(result.output.prefix(64))
  }
}
