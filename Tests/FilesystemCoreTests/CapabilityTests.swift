import Backend
import DataLayer
import Foundation
import Logging
import TestSupport
import XCTest

@testable import FilesystemCore

/// The core reads what the backend declares: the in-memory backend presented as others.
final class CapabilityTests: XCTestCase {
  private var staging: TemporaryDirectory!
  private let root = InodeTable.rootInode
  private let logger = Logger(label: "core-tests") { _ in SwiftLogNoOpLogHandler() }

  override func setUp() async throws {
    staging = try TemporaryDirectory(prefix: "core-capabilities")
  }

  override func tearDown() {
    staging?.remove()
  }

  /// The filesystem over `backend` with the reader the mount would pick.
  private func mount(_ backend: InMemoryRemoteFilesystem, attributeTimeout: Double = 60)
    async throws -> Filesystem
  {
    let configuration = FilesystemConfiguration(
      attributeTimeout: attributeTimeout, entryTimeout: attributeTimeout,
      stagingParent: staging.path)
    let capabilities = await backend.capabilities()
    let reader = try makeFileReader(
      backend: backend, capabilities: capabilities, blockCache: BlockCacheConfiguration(),
      wholeFiles: WholeFileConfiguration(parentDirectory: staging.path), logger: logger)
    return try Filesystem(
      backend: backend, capabilities: capabilities, configuration: configuration, reader: reader,
      logger: logger)
  }

  private func readAll(_ filesystem: Filesystem, _ name: String, piece: Int = 4096) async throws
    -> [UInt8]
  {
    let inode = try await filesystem.lookUp(parent: root, name: name).inode
    let opened = try await filesystem.open(inode, flags: O_RDONLY)
    var bytes: [UInt8] = []
    while true {
      let next = try await filesystem.read(
        handle: opened.handle, offset: UInt64(bytes.count), length: piece)
      if next.isEmpty { break }
      bytes += next
    }
    try await filesystem.release(handle: opened.handle)
    filesystem.forget(inode, count: 1)
    return bytes
  }

  func testWithoutRangedReadsAFileIsDownloadedOnceAndReadFromTheCopy() async throws {
    var capabilities = InMemoryRemoteFilesystem.stockEnvdCapabilities
    capabilities.rangedReads = false
    let backend = InMemoryRemoteFilesystem(capabilities: capabilities)
    let content = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) }
    backend.put("/big", content)
    // No attribute caching: each open sees the sandbox's current version.
    let filesystem = try await mount(backend, attributeTimeout: 0)
    defer { filesystem.shutdown() }

    let first = try await readAll(filesystem, "big")
    let second = try await readAll(filesystem, "big", piece: 65536)
    XCTAssertEqual(first, content)
    XCTAssertEqual(second, content)
    XCTAssertEqual(backend.calls("download"), 1, "one download for two opens and their reads")
    XCTAssertEqual(backend.calls("read"), 0, "no ranged read")

    // Changed in the sandbox: the new version is downloaded.
    let changed = Array(content.reversed().prefix(123_456))
    backend.put("/big", changed)
    let third = try await readAll(filesystem, "big")
    XCTAssertEqual(third, changed)
    XCTAssertEqual(backend.calls("download"), 2)

    // A short download is EIO and nothing of it is served after.
    backend.put("/cut", content)
    let cut = try await filesystem.lookUp(parent: root, name: "cut").inode
    let opened = try await filesystem.open(cut, flags: O_RDONLY)
    backend.truncateAnswers(2)
    await assertRemoteError(EIO) {
      try await filesystem.read(handle: opened.handle, offset: 0, length: 4096)
    }
    let again = try await filesystem.read(handle: opened.handle, offset: 290_000, length: 20_000)
    XCTAssertEqual(Array(again), Array(content[290_000...]))
    try await filesystem.release(handle: opened.handle)
  }

  func testWithRangedReadsTheBlockCacheReads() async throws {
    let backend = InMemoryRemoteFilesystem()
    backend.put("/f", [UInt8](repeating: 1, count: 10_000))
    let filesystem = try await mount(backend)
    defer { filesystem.shutdown() }
    let bytes = try await readAll(filesystem, "f")
    XCTAssertEqual(bytes.count, 10_000)
    XCTAssertEqual(backend.calls("download"), 0)
    XCTAssertGreaterThan(backend.calls("read"), 0)
  }

  func testInodeNumbersAndRichAttributesComeFromTheBackendOnlyWhenDeclared() async throws {
    var numbersOnly = InMemoryRemoteFilesystem.stockEnvdCapabilities
    numbersOnly.inodeNumbers = true
    for declared in [
      InMemoryRemoteFilesystem.allCapabilities, InMemoryRemoteFilesystem.stockEnvdCapabilities,
      numbersOnly,
    ] {
      let backend = InMemoryRemoteFilesystem(capabilities: declared)
      // Remote numbers apart from the ones the mount hands out in lookup order.
      for name in ["/x", "/y", "/z"] { backend.put(name, []) }
      backend.put("/d/f", [1, 2, 3])
      // A ctime apart from the mtime.
      try await Task.sleep(for: .milliseconds(2))
      _ = try await backend.setAttributes("/", RemoteAttributeChanges(mode: 0o755))
      let filesystem = try await mount(backend)
      defer { filesystem.shutdown() }
      let remote = try await backend.attributes(of: "/d/f")
      let file = try await filesystem.lookUp(parent: root, name: "d")
      let entry = try await filesystem.lookUp(parent: file.inode, name: "f")
      if declared.inodeNumbers {
        XCTAssertEqual(UInt64(entry.attributes.st_ino), remote.inode)
      } else {
        XCTAssertEqual(UInt64(entry.attributes.st_ino), entry.inode)
      }
      // The root holds /d: 3 links in the backend, shown only when it is rich.
      let rootStat = try await filesystem.attributes(of: root)
      let remoteRoot = try await backend.attributes(of: "/")
      XCTAssertEqual(
        UInt32(rootStat.st_nlink), declared.richAttributes ? remoteRoot.linkCount! : 2)
      XCTAssertNotEqual(remoteRoot.changeTime, remoteRoot.modificationTime)
      let shownChange = RemoteTime(
        seconds: Int64(rootStat.st_ctim.tv_sec), nanoseconds: Int32(rootStat.st_ctim.tv_nsec))
      XCTAssertEqual(
        shownChange,
        declared.richAttributes ? remoteRoot.changeTime! : remoteRoot.modificationTime)
    }
  }

  /// An upload that loses setuid (stock envd's chown) gets it put back; one that keeps it does
  /// not cost the extra call.
  func testSpecialBitsAreRestoredOnlyWhenUploadsLoseThem() async throws {
    for keeps in [true, false] {
      var declared = InMemoryRemoteFilesystem.allCapabilities
      declared.uploadKeepsOwnerAndMode = keeps
      let backend = InMemoryRemoteFilesystem(capabilities: declared)
      backend.put("/tool", [1, 2, 3], mode: 0o4755)
      let filesystem = try await mount(backend)
      defer { filesystem.shutdown() }
      let inode = try await filesystem.lookUp(parent: root, name: "tool").inode
      let opened = try await filesystem.open(inode, flags: O_WRONLY)
      _ = try [UInt8]([9]).withUnsafeBytes {
        try filesystem.write(handle: opened.handle, bytes: $0, offset: 0)
      }
      backend.resetCalls()
      try await filesystem.flush(handle: opened.handle)
      try await filesystem.release(handle: opened.handle)
      XCTAssertEqual(backend.calls("setAttributes"), keeps ? 0 : 1, "keeps: \(keeps)")
    }
  }
}
