import Backend
import Foundation
import Logging
import TestSupport
import XCTest

@testable import FilesystemCore

/// `Filesystem` driven directly, as the FUSE bridge does, over the in-memory backend: inode
/// numbers and lookup counts, cache patching (counted in backend calls), errno paths.
final class FilesystemTests: XCTestCase {
  private var backend: InMemoryRemoteFilesystem!
  private var staging: TemporaryDirectory!
  private var filesystem: Filesystem!
  private let root = InodeTable.rootInode

  override func setUp() async throws {
    backend = InMemoryRemoteFilesystem()
    staging = try TemporaryDirectory(prefix: "core-staging")
    // Long timeouts: every cache answer in a test is fresh, so backend calls are all ours.
    let configuration = FilesystemConfiguration(
      attributeTimeout: 60, entryTimeout: 60, stagingParent: staging.path)
    filesystem = try Filesystem(
      backend: backend, capabilities: await backend.capabilities(), configuration: configuration,
      logger: Logger(label: "core-tests") { _ in SwiftLogNoOpLogHandler() })
  }

  override func tearDown() {
    filesystem?.shutdown()
    staging?.remove()
  }

  func testLookUpsShareOneInodeAndRemovalOrphansItUntilForgotten() async throws {
    backend.put("/a", [1, 2, 3])
    let first = try await filesystem.lookUp(parent: root, name: "a")
    let second = try await filesystem.lookUp(parent: root, name: "a")
    XCTAssertEqual(first.inode, second.inode)
    XCTAssertEqual(first.attributes.st_size, 3)
    let known = filesystem.inodes.count

    // The kernel holds two references: the removed file stays (an orphan) until both go.
    try await filesystem.removeFile(parent: root, name: "a")
    XCTAssertNil(filesystem.inodes.path(of: first.inode))
    let orphan = try await filesystem.attributes(of: first.inode)
    XCTAssertEqual(orphan.st_nlink, 0, "fstat after unlink")
    XCTAssertEqual(orphan.st_size, 3)
    filesystem.forget(first.inode, count: 1)
    XCTAssertEqual(filesystem.inodes.count, known)
    filesystem.forget(first.inode, count: 1)
    XCTAssertEqual(filesystem.inodes.count, known - 1)
    await assertRemoteError(ENOENT) { try await self.filesystem.attributes(of: first.inode) }
  }

  func testAForgottenPathKeepsItsNumber() async throws {
    backend.put("/kept", [1])
    let entry = try await filesystem.lookUp(parent: root, name: "kept")
    filesystem.forget(entry.inode, count: 1)
    let again = try await filesystem.lookUp(parent: root, name: "kept")
    XCTAssertEqual(again.inode, entry.inode)
  }

  func testErrnoPaths() async throws {
    backend.put("/file", [1])
    backend.put("/dir/inside", [1])
    let directory = try await filesystem.lookUp(parent: root, name: "dir").inode
    await assertRemoteError(ENOENT) {
      try await self.filesystem.lookUp(parent: self.root, name: "no")
    }
    await assertRemoteError(ENOENT) {
      try await self.filesystem.removeFile(parent: self.root, name: "no")
    }
    await assertRemoteError(EISDIR) {
      try await self.filesystem.removeFile(parent: self.root, name: "dir")
    }
    await assertRemoteError(ENOTEMPTY) {
      try await self.filesystem.removeDirectory(parent: self.root, name: "dir")
    }
    await assertRemoteError(EEXIST) {
      try await self.filesystem.makeDirectory(parent: self.root, name: "dir", mode: 0o755)
    }
    await assertRemoteError(EEXIST) {
      try await self.filesystem.create(
        parent: self.root, name: "file", mode: 0o644, flags: O_WRONLY | O_CREAT | O_EXCL)
    }
    await assertRemoteError(ENOENT) {
      try await self.filesystem.rename(
        parent: self.root, name: "no", newParent: directory, newName: "x", flags: 0)
    }
    await assertRemoteError(EEXIST) {
      try await self.filesystem.rename(
        parent: self.root, name: "file", newParent: directory, newName: "inside", flags: 1)
    }
    await assertRemoteError(EINVAL) {
      try await self.filesystem.lookUp(parent: self.root, name: "a/b")
    }
    // Without O_EXCL an existing file is opened, not emptied.
    let (entry, opened) = try await filesystem.create(
      parent: root, name: "file", mode: 0o600, flags: O_WRONLY | O_CREAT)
    try await filesystem.release(handle: opened.handle)
    XCTAssertEqual(entry.attributes.st_size, 1)
    XCTAssertEqual(try backend.contents("/file"), [1])
  }

  /// After a listing, our own creates, renames and removals patch it: lookups and listings that
  /// follow need no backend call, "no such name" included.
  func testOwnChangesPatchTheCachesWithoutBackendCalls() async throws {
    backend.put("/dir/old", [1])
    let directory = try await filesystem.lookUp(parent: root, name: "dir").inode
    _ = try await names(in: directory)
    backend.resetCalls()

    let (created, opened) = try await filesystem.create(
      parent: directory, name: "new", mode: 0o644, flags: O_WRONLY | O_CREAT)
    XCTAssertEqual(backend.calls("createFile"), 1)
    XCTAssertEqual(backend.totalCalls, 1, "a create is one call")
    try await filesystem.release(handle: opened.handle)
    backend.resetCalls()

    var found = try await filesystem.lookUp(parent: directory, name: "new")
    XCTAssertEqual(found.inode, created.inode)
    try await filesystem.rename(
      parent: directory, name: "new", newParent: directory, newName: "moved", flags: 0)
    XCTAssertEqual(backend.totalCalls, 1, "the rename alone")
    await assertRemoteError(ENOENT) {
      try await self.filesystem.lookUp(parent: directory, name: "new")
    }
    found = try await filesystem.lookUp(parent: directory, name: "moved")
    XCTAssertEqual(found.inode, created.inode, "the inode moved with its name")
    XCTAssertEqual(filesystem.inodes.path(of: created.inode), "/dir/moved")

    try await filesystem.removeFile(parent: directory, name: "moved")
    await assertRemoteError(ENOENT) {
      try await self.filesystem.lookUp(parent: directory, name: "moved")
    }
    let made = try await filesystem.makeDirectory(parent: directory, name: "sub", mode: 0o750)
    XCTAssertEqual(made.attributes.st_mode & 0o7777, 0o750)
    let below = try await names(in: made.inode)
    XCTAssertEqual(below, [".", ".."], "a new folder is known to be empty")
    let listed = try await names(in: directory)
    XCTAssertEqual(listed, [".", "..", "old", "sub"])
    XCTAssertEqual(backend.calls("rename"), 1)
    XCTAssertEqual(backend.calls("removeFile"), 1)
    XCTAssertEqual(backend.calls("createDirectory"), 1)
    XCTAssertEqual(backend.totalCalls, 3, "lookups and listings came from the caches")
  }

  /// A file renamed while open keeps its inode: its close uploads to the new name.
  func testRenameOfAnOpenFileUploadsToTheNewName() async throws {
    let (entry, opened) = try await filesystem.create(
      parent: root, name: "a", mode: 0o644, flags: O_WRONLY | O_CREAT)
    try write(Array("hello".utf8), handle: opened.handle, at: 0)
    try await filesystem.rename(parent: root, name: "a", newParent: root, newName: "b", flags: 0)
    try await filesystem.flush(handle: opened.handle)
    try await filesystem.release(handle: opened.handle)
    XCTAssertEqual(try backend.contents("/b"), Array("hello".utf8))
    XCTAssertThrowsError(try backend.contents("/a"))
    XCTAssertEqual(filesystem.inodes.path(of: entry.inode), "/b")
  }

  /// A file replaced while open is an orphan: its close must not bring it back.
  func testAFileReplacedWhileOpenIsNotUploaded() async throws {
    let (_, opened) = try await filesystem.create(
      parent: root, name: "x", mode: 0o644, flags: O_WRONLY | O_CREAT)
    try write([1, 2, 3], handle: opened.handle, at: 0)
    backend.put("/y", [9])
    _ = try await filesystem.lookUp(parent: root, name: "y")
    try await filesystem.rename(parent: root, name: "y", newParent: root, newName: "x", flags: 0)
    try await filesystem.flush(handle: opened.handle)
    try await filesystem.release(handle: opened.handle)
    XCTAssertEqual(try backend.contents("/x"), [9])
  }

  func testHardLinksShareOneNode() async throws {
    backend.put("/a", [1])
    let source = try await filesystem.lookUp(parent: root, name: "a")
    let linked = try await filesystem.makeLink(source.inode, newParent: root, newName: "b")
    XCTAssertEqual(linked.inode, source.inode)
    XCTAssertEqual(linked.attributes.st_nlink, 2)
    try await filesystem.removeFile(parent: root, name: "a")
    let left = try await filesystem.lookUp(parent: root, name: "b")
    XCTAssertEqual(left.inode, source.inode)
    XCTAssertEqual(filesystem.inodes.path(of: source.inode), "/b")
    let attributes = try await filesystem.attributes(of: left.inode)
    XCTAssertEqual(attributes.st_nlink, 1)
  }

  func testReadsAndWritesGoThroughTheStagingFile() async throws {
    let content = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
    backend.put("/r", content)
    let inode = try await filesystem.lookUp(parent: root, name: "r").inode
    let reading = try await filesystem.open(inode, flags: O_RDONLY)
    var bytes = try await filesystem.read(handle: reading.handle, offset: 1000, length: 5000)
    XCTAssertEqual(Array(bytes), Array(content[1000..<6000]))
    try await filesystem.release(handle: reading.handle)

    let writing = try await filesystem.open(inode, flags: O_RDWR)
    try write([0xAA, 0xBB], handle: writing.handle, at: 10)
    bytes = try await filesystem.read(handle: writing.handle, offset: 8, length: 6)
    XCTAssertEqual(Array(bytes), [content[8], content[9], 0xAA, 0xBB, content[12], content[13]])
    try await filesystem.flush(handle: writing.handle)
    try await filesystem.release(handle: writing.handle)
    var expected = content
    expected[10] = 0xAA
    expected[11] = 0xBB
    XCTAssertEqual(try backend.contents("/r"), expected)
    XCTAssertEqual(backend.calls("upload"), 0, "two bytes went as a range, not the whole file")
  }

  /// A short answer from the backend is retried once, then EIO: never short data.
  func testTruncatedReadsAreEIO() async throws {
    backend.put("/t", [UInt8](repeating: 7, count: 10_000))
    let inode = try await filesystem.lookUp(parent: root, name: "t").inode
    let opened = try await filesystem.open(inode, flags: O_RDONLY)
    backend.truncateAnswers(1)
    let retried = try await filesystem.read(handle: opened.handle, offset: 0, length: 4096)
    XCTAssertEqual(retried.count, 4096)
    backend.truncateAnswers(2)
    await assertRemoteError(EIO) {
      try await self.filesystem.read(handle: opened.handle, offset: 4096, length: 4096)
    }
    try await filesystem.release(handle: opened.handle)
  }

  /// Someone else made the file after our listing said it was missing: a create without
  /// O_EXCL opens theirs, never empties it; with O_EXCL it is EEXIST.
  func testACreateRacingAnotherWriterOpensTheirFile() async throws {
    backend.put("/dir/other", [1])
    let directory = try await filesystem.lookUp(parent: root, name: "dir").inode
    _ = try await names(in: directory)
    backend.put("/dir/late", [5, 5])
    await assertRemoteError(EEXIST) {
      try await self.filesystem.create(
        parent: directory, name: "late", mode: 0o644, flags: O_WRONLY | O_CREAT | O_EXCL)
    }
    let (entry, opened) = try await filesystem.create(
      parent: directory, name: "late", mode: 0o644, flags: O_WRONLY | O_CREAT)
    XCTAssertEqual(entry.attributes.st_size, 2)
    try await filesystem.release(handle: opened.handle)
    XCTAssertEqual(try backend.contents("/dir/late"), [5, 5])
  }

  /// A file removed by someone else while our caches still hold it: the read says ENOENT.
  func testAFileRemovedBehindTheCachesReadsENOENT() async throws {
    backend.put("/gone", [1, 2, 3])
    let inode = try await filesystem.lookUp(parent: root, name: "gone").inode
    try await backend.removeFile("/gone")
    let opened = try await filesystem.open(inode, flags: O_RDONLY)
    await assertRemoteError(ENOENT) {
      try await self.filesystem.read(handle: opened.handle, offset: 0, length: 3)
    }
    try await filesystem.release(handle: opened.handle)
  }

  /// A tool statting many names of one folder pays one listing, not a round trip per name.
  func testASecondMissInAFolderListsIt() async throws {
    for name in ["a", "b", "c"] { backend.put("/dir/" + name, [1]) }
    let directory = try await filesystem.lookUp(parent: root, name: "dir").inode
    backend.resetCalls()
    _ = try await filesystem.lookUp(parent: directory, name: "a")
    XCTAssertEqual(backend.calls("attributes"), 1, "a lone lookup is a stat")
    _ = try await filesystem.lookUp(parent: directory, name: "b")
    XCTAssertEqual(backend.calls("listDirectory"), 1, "the second lists the folder")
    _ = try await filesystem.lookUp(parent: directory, name: "c")
    await assertRemoteError(ENOENT) {
      try await self.filesystem.lookUp(parent: directory, name: "x")
    }
    XCTAssertEqual(backend.totalCalls, 2, "the rest came from the listing")
  }

  /// rsync fchmods each file to the mode it just made it with.
  func testAChmodToTheKnownModeCostsNoCall() async throws {
    backend.put("/f", [1], mode: 0o640)
    let inode = try await filesystem.lookUp(parent: root, name: "f").inode
    backend.resetCalls()
    let same = try await filesystem.setAttributes(
      of: inode, handle: nil, changes: AttributeChanges(mode: 0o640))
    XCTAssertEqual(same.st_mode & 0o7777, 0o640)
    XCTAssertEqual(backend.totalCalls, 0)
    let changed = try await filesystem.setAttributes(
      of: inode, handle: nil, changes: AttributeChanges(mode: 0o600))
    XCTAssertEqual(changed.st_mode & 0o7777, 0o600)
    XCTAssertEqual(backend.calls("setAttributes"), 1)
    XCTAssertEqual(backend.totalCalls, 1, "the answer patched the caches")
  }

  func testReadOnlyRefusesChangesWithoutCalls() async throws {
    var configuration = filesystem.configuration
    configuration.readOnly = true
    let readOnly = try Filesystem(
      backend: backend, capabilities: await backend.capabilities(), configuration: configuration,
      logger: Logger(label: "core-tests") { _ in SwiftLogNoOpLogHandler() })
    backend.put("/f", [1])
    let inode = try await readOnly.lookUp(parent: root, name: "f").inode
    backend.resetCalls()
    await assertRemoteError(EROFS) { try await readOnly.open(inode, flags: O_WRONLY) }
    await assertRemoteError(EROFS) {
      try await readOnly.makeDirectory(parent: self.root, name: "d", mode: 0o755)
    }
    await assertRemoteError(EROFS) { try await readOnly.removeFile(parent: self.root, name: "f") }
    XCTAssertEqual(backend.totalCalls, 0)
  }

  // MARK: -

  private func names(in inode: UInt64) async throws -> [String] {
    let handle = try filesystem.openDirectory(inode).handle
    defer { filesystem.releaseDirectory(handle) }
    let entries = try await filesystem.readDirectory(inode: inode, handle: handle, offset: 0)
    return entries.map(\.name).sorted()
  }

  /// close(2) got EIO (the sandbox unreachable): the release after it does not send those
  /// changes anyway once the sandbox is back, and the file reads as the sandbox has it.
  func testChangesWhoseCloseFailedAreNotSentByTheRelease() async throws {
    let old = [UInt8](repeating: 1, count: 1000)
    backend.put("/f", old)
    let inode = try await filesystem.lookUp(parent: root, name: "f").inode
    let writing = try await filesystem.open(inode, flags: O_WRONLY)
    try write([UInt8](repeating: 2, count: 500), handle: writing.handle, at: 1000)
    backend.fail(["upload", "writeRanges"])
    await assertRemoteError(EIO) { try await self.filesystem.flush(handle: writing.handle) }
    backend.fail([])
    try? await filesystem.release(handle: writing.handle)
    let sent = try backend.contents("/f")
    XCTAssertEqual(sent.count, 1000)
    XCTAssertTrue(sent == old)
    let reading = try await filesystem.open(inode, flags: O_RDONLY)
    let bytes = try await filesystem.read(handle: reading.handle, offset: 0, length: 4096)
    XCTAssertEqual(bytes.count, 1000)
    XCTAssertTrue(Array(bytes) == old)
    try await filesystem.release(handle: reading.handle)
  }

  /// A reader keeps the inode's staging file past a writer whose close failed: a later
  /// writer's upload must not carry the failed changes along.
  func testChangesWhoseCloseFailedAreNotSentWithALaterWriter() async throws {
    backend.put("/f", [UInt8](repeating: 1, count: 1000))
    let inode = try await filesystem.lookUp(parent: root, name: "f").inode
    let reading = try await filesystem.open(inode, flags: O_RDONLY)
    let first = try await filesystem.open(inode, flags: O_WRONLY)
    try write([UInt8](repeating: 2, count: 500), handle: first.handle, at: 1000)
    backend.fail(["upload", "writeRanges"])
    await assertRemoteError(EIO) { try await self.filesystem.flush(handle: first.handle) }
    try? await filesystem.release(handle: first.handle)
    backend.fail([])

    let second = try await filesystem.open(inode, flags: O_WRONLY)
    try write([9], handle: second.handle, at: 0)
    try await filesystem.flush(handle: second.handle)
    try await filesystem.release(handle: second.handle)
    try await filesystem.release(handle: reading.handle)
    var expected = [UInt8](repeating: 1, count: 1000)
    expected[0] = 9
    let sent = try backend.contents("/f")
    XCTAssertEqual(sent.count, 1000)
    XCTAssertTrue(sent == expected)
  }

  private func write(_ bytes: [UInt8], handle: UInt64, at offset: UInt64) throws {
    let written = try bytes.withUnsafeBytes {
      try filesystem.write(handle: handle, bytes: $0, offset: offset)
    }
    XCTAssertEqual(written, bytes.count)
  }
}
