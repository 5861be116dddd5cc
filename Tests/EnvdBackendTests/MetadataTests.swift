import Backend
import EnvdBackend
import Foundation
import TestSupport
import XCTest

/// Stat, ListDir, MakeDir, Remove and Move against a real agent, checked on its root folder.
final class MetadataTests: XCTestCase {
  private var fixture: AgentFixture!
  private var backend: (any EnvdRemote)!

  override func setUp() async throws {
    fixture = try AgentFixture()
    backend = try await fixture.backend()
  }

  override func tearDown() {
    fixture?.close()
  }

  func testAttributesMatchTheDisk() async throws {
    try fixture.write("/a.txt", Array("hello".utf8))
    chmod(fixture.path("/a.txt"), 0o640)
    try fixture.makeDirectory("/dir")
    chmod(fixture.path("/dir"), 0o2750)

    var info = stat()
    lstat(fixture.path("/a.txt"), &info)
    let file = try await backend.attributes(of: "/a.txt")
    XCTAssertEqual(file.type, .regular)
    XCTAssertEqual(file.size, 5)
    XCTAssertEqual(file.permissions, 0o640)
    XCTAssertEqual(file.modificationTime.seconds, Int64(info.st_mtim.tv_sec))
    XCTAssertEqual(file.modificationTime.nanoseconds, Int32(info.st_mtim.tv_nsec))
    XCTAssertTrue(
      file.owner != nil || file.uid != nil, "an owner, by name (envd) or id (extension)")

    let directory = try await backend.attributes(of: "/dir")
    XCTAssertEqual(directory.type, .directory)
    XCTAssertEqual(directory.permissions, 0o2750)
    let root = try await backend.attributes(of: "/")
    XCTAssertEqual(root.type, .directory)

    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/missing") }
    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/dir/missing/deeper") }
  }

  func testSymlinkIsDescribedNotFollowed() async throws {
    try fixture.makeDirectory("/target")
    try FileManager.default.createSymbolicLink(
      atPath: fixture.path("/link"), withDestinationPath: "target")
    let link = try await backend.attributes(of: "/link")
    XCTAssertEqual(link.type, .symlink)
    XCTAssertEqual(link.size, 6)
  }

  func testListDirectory() async throws {
    try fixture.write("/d/one", [1])
    try fixture.write("/d/two", [1, 2])
    try fixture.makeDirectory("/d/sub")
    try fixture.write("/d/sub/deep", [1])
    let entries = try await backend.listDirectory("/d")
    XCTAssertEqual(entries.map(\.name).sorted(), ["one", "sub", "two"])
    XCTAssertEqual(entries.first { $0.name == "two" }?.attributes.size, 2)
    XCTAssertEqual(entries.first { $0.name == "sub" }?.attributes.type, .directory)
    let rootNames = try await backend.listDirectory("/").map(\.name)
    XCTAssertEqual(rootNames, ["d"])
    try fixture.makeDirectory("/empty")
    let empty = try await backend.listDirectory("/empty")
    XCTAssertEqual(empty, [])

    await assertRemoteError(ENOTDIR) { try await backend.listDirectory("/d/one") }
    await assertRemoteError(ENOENT) { try await backend.listDirectory("/nope") }
  }

  func testNamesThatNeedEncoding() async throws {
    let name = "/a b&c=d%?#é+.txt"
    try fixture.write(name, Array("odd".utf8))
    let attributes = try await backend.attributes(of: name)
    XCTAssertEqual(attributes.size, 3)
    let bytes = try await backend.read(name, offset: 0, length: 10, expectedSize: 3)
    XCTAssertEqual(bytes, Array("odd".utf8))
    let names = try await backend.listDirectory("/").map(\.name)
    XCTAssertEqual(names, ["a b&c=d%?#é+.txt"])
  }

  func testMakeDirectory() async throws {
    try await backend.makeDirectory("/new", mode: 0o755)
    var isDirectory: ObjCBool = false
    XCTAssertTrue(
      FileManager.default.fileExists(atPath: fixture.path("/new"), isDirectory: &isDirectory))
    XCTAssertTrue(isDirectory.boolValue)

    await assertRemoteError(EEXIST) { try await backend.makeDirectory("/new", mode: 0o755) }
    await assertRemoteError(ENOENT) {
      try await backend.makeDirectory("/missing/child", mode: 0o755)
    }
    XCTAssertFalse(fixture.exists("/missing"))
    try fixture.write("/file", [1])
    await assertRemoteError(ENOTDIR) { try await backend.makeDirectory("/file/child", mode: 0o755) }
    await assertRemoteError(EEXIST) { try await backend.makeDirectory("/file", mode: 0o755) }
    await assertRemoteError(EEXIST) { try await backend.makeDirectory("/", mode: 0o755) }
  }

  func testRemoveFile() async throws {
    try fixture.write("/f", [1])
    try fixture.makeDirectory("/d")
    try await backend.removeFile("/f")
    XCTAssertFalse(fixture.exists("/f"))
    await assertRemoteError(ENOENT) { try await backend.removeFile("/f") }
    await assertRemoteError(EISDIR) { try await backend.removeFile("/d") }
    XCTAssertTrue(fixture.exists("/d"))
  }

  func testRemoveDirectory() async throws {
    try fixture.write("/full/f", [1])
    try fixture.makeDirectory("/empty")
    try fixture.write("/file", [1])
    await assertRemoteError(ENOTEMPTY) { try await backend.removeDirectory("/full") }
    XCTAssertTrue(fixture.exists("/full/f"))
    await assertRemoteError(ENOTDIR) { try await backend.removeDirectory("/file") }
    await assertRemoteError(ENOENT) { try await backend.removeDirectory("/nothing") }
    await assertRemoteError(EBUSY) { try await backend.removeDirectory("/") }
    try await backend.removeDirectory("/empty")
    XCTAssertFalse(fixture.exists("/empty"))
  }

  func testRename() async throws {
    try fixture.write("/a", Array("A".utf8))
    try fixture.write("/b", Array("B".utf8))
    try fixture.makeDirectory("/dir")
    try fixture.write("/full/x", [1])
    try fixture.makeDirectory("/emptydir")

    // A file replaces a file atomically.
    try await backend.rename(from: "/a", to: "/b")
    XCTAssertFalse(fixture.exists("/a"))
    XCTAssertEqual(try fixture.contents("/b"), Array("A".utf8))
    // Across folders.
    try await backend.rename(from: "/b", to: "/dir/b")
    XCTAssertEqual(try fixture.contents("/dir/b"), Array("A".utf8))

    await assertRemoteError(ENOENT) { try await backend.rename(from: "/nope", to: "/x") }
    await assertRemoteError(ENOENT) { try await backend.rename(from: "/dir/b", to: "/missing/b") }
    XCTAssertFalse(fixture.exists("/missing"))
    await assertRemoteError(ENOTEMPTY) { try await backend.rename(from: "/dir", to: "/full") }
    await assertRemoteError(EISDIR) { try await backend.rename(from: "/dir/b", to: "/emptydir") }
    try fixture.write("/plain", [1])
    await assertRemoteError(ENOTDIR) { try await backend.rename(from: "/dir", to: "/plain") }
    await assertRemoteError(EINVAL) { try await backend.rename(from: "/dir", to: "/dir/inside") }

    // A directory replaces an empty directory.
    try await backend.rename(from: "/dir", to: "/emptydir")
    XCTAssertFalse(fixture.exists("/dir"))
    XCTAssertEqual(try fixture.contents("/emptydir/b"), Array("A".utf8))
  }

  func testFilesystemStatistics() async throws {
    let statistics = try await backend.filesystemStatistics()
    XCTAssertGreaterThan(statistics.totalBytes, 0)
    XCTAssertLessThanOrEqual(statistics.usedBytes, statistics.totalBytes)
  }

  func testRemoteRootIsPrefixed() async throws {
    try fixture.write("/home/user/notes.txt", Array("n".utf8))
    let scoped = try await fixture.backend { $0.remoteRoot = "/home/user/" }
    try await scoped.verifyConnection()
    let names = try await scoped.listDirectory("/").map(\.name)
    XCTAssertEqual(names, ["notes.txt"])
    try await scoped.makeDirectory("/made", mode: 0o755)
    XCTAssertTrue(fixture.exists("/home/user/made"))
    try await scoped.upload("/made/up", from: nil)
    XCTAssertTrue(fixture.exists("/home/user/made/up"))
  }
}
