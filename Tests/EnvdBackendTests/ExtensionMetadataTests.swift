import Backend
import EnvdBackend
import Foundation
import XCTest

/// The metadata operations through the agent extension, one round trip each.
final class ExtensionMetadataTests: XCTestCase {
  private var fixture: AgentFixture!
  private var checks: MetadataChecks!

  override func setUp() async throws {
    fixture = try AgentFixture()
    let backend = try await fixture.backend()
    try await backend.verifyConnection()
    checks = MetadataChecks(fixture: fixture, backend: backend, hasExtension: true)
    let capabilities = await backend.capabilities()
    XCTAssertTrue(capabilities.richAttributes)
  }

  override func tearDown() { fixture?.close() }

  func testSetAttributes() async throws { try await checks.setAttributes() }
  func testSymlinks() async throws { try await checks.symlinks() }
  func testHardLinks() async throws { try await checks.hardLinks() }
  func testRenameFlags() async throws { try await checks.renameFlags() }
  func testCreation() async throws { try await checks.creation() }
  func testRemoval() async throws { try await checks.removal() }
  func testStatistics() async throws { try await checks.statistics() }
  func testConcurrentChanges() async throws { try await checks.concurrentChanges() }
  func testFsync() async throws { try await checks.fsync() }

  func testRichStatMatchesTheDisk() async throws {
    try fixture.write("/f", [1, 2, 3])
    chown(fixture.path("/f"), 321, 654)
    symlink("target text", fixture.path("/l"))
    let attributes = try await checks.backend.attributes(of: "/f")
    let info = checks.diskStat("/f")
    XCTAssertEqual(attributes.inode, UInt64(info.st_ino))
    XCTAssertEqual(attributes.linkCount, 1)
    XCTAssertEqual(attributes.uid, 321)
    XCTAssertEqual(attributes.gid, 654)
    XCTAssertEqual(attributes.blocks, UInt64(info.st_blocks))
    XCTAssertEqual(attributes.accessTime?.nanoseconds, Int32(info.st_atim.tv_nsec))
    XCTAssertEqual(attributes.changeTime?.seconds, Int64(info.st_ctim.tv_sec))
    let entries = try await checks.backend.listDirectory("/")
    XCTAssertEqual(entries.map(\.name), ["f", "l"])
    XCTAssertEqual(entries[1].attributes.symlinkTarget, "target text")
    XCTAssertEqual(entries[0].attributes.inode, UInt64(info.st_ino))
  }

  /// An upload replaces the file atomically (a new inode renamed over it) with its owner and
  /// mode; a file with other hard links is rewritten in place, so they keep sharing it.
  func testUploadReplacesAtomicallyKeepingOwnerAndMode() async throws {
    try fixture.write("/kept", [1])
    chmod(fixture.path("/kept"), 0o751)
    chown(fixture.path("/kept"), 77, 88)
    let inode = checks.diskStat("/kept").st_ino
    let local = fixture.root + "/../upload-\(getpid())"
    try Data([5, 6, 7]).write(to: URL(fileURLWithPath: local))
    defer { unlink(local) }
    let answer = try await checks.backend.upload("/kept", from: local)
    let info = checks.diskStat("/kept")
    XCTAssertEqual(try fixture.contents("/kept"), [5, 6, 7])
    XCTAssertNotEqual(info.st_ino, inode)
    XCTAssertEqual(answer?.attributes.inode, UInt64(info.st_ino))
    XCTAssertEqual(answer?.attributes.size, 3)
    XCTAssertEqual(info.st_uid, 77)
    XCTAssertEqual(info.st_mode & 0o7777, 0o751)
    link(fixture.path("/kept"), fixture.path("/other"))
    try await checks.backend.upload("/kept", from: nil)
    XCTAssertEqual(checks.diskStat("/kept").st_ino, info.st_ino)
    XCTAssertEqual(try fixture.contents("/other"), [])
    // A new file still goes through envd's upload.
    try await checks.backend.upload("/fresh", from: local)
    XCTAssertEqual(try fixture.contents("/fresh"), [5, 6, 7])
  }
}
