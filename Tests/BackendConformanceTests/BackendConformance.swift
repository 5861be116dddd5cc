import Backend
import Foundation
import TestSupport
import XCTest

/// What every `RemoteFilesystem` must do, observed through the protocol alone: the errno of
/// each failure its doc comments name, reads with the truncation check, uploads, metadata.
/// Each check starts from an empty root. What a backend may decline (rename flags, hard links)
/// is read from its capabilities; rich attributes (inode, nlink, atime) are checked when it
/// claims them.
struct BackendConformance {
  let backend: any RemoteFilesystem
  /// A local folder for upload sources and download targets.
  let scratch: String

  private func capabilities() async -> RemoteCapabilities { await backend.capabilities() }

  private func localFile(_ name: String, _ bytes: [UInt8]) throws -> String {
    let path = scratch + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  private func write(_ path: String, _ bytes: [UInt8]) async throws {
    try await backend.upload(path, from: try localFile("upload", bytes))
  }

  private func contents(_ path: String) async throws -> [UInt8] {
    let size = try await backend.attributes(of: path).size
    return try await backend.read(path, offset: 0, length: Int(size) + 1, expectedSize: size)
  }

  private func names(_ path: String) async throws -> [String] {
    try await backend.listDirectory(path).map(\.name).sorted()
  }

  func namespace() async throws {
    _ = try await backend.createDirectory("/d", mode: 0o755)
    _ = try await backend.createFile("/d/f", mode: 0o644, exclusive: true)
    let listed = try await names("/d")
    XCTAssertEqual(listed, ["f"], "no . or ..")
    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/missing") }
    await assertRemoteError(ENOENT) { try await backend.listDirectory("/missing") }
    await assertRemoteError(ENOTDIR) { try await backend.listDirectory("/d/f") }
    await assertRemoteError(EEXIST) { try await backend.makeDirectory("/d", mode: 0o755) }
    await assertRemoteError(EEXIST) { try await backend.createDirectory("/d/f", mode: 0o755) }
    await assertRemoteError(ENOENT) { try await backend.makeDirectory("/x/y", mode: 0o755) }
    await assertRemoteError(EISDIR) { try await backend.removeFile("/d") }
    await assertRemoteError(ENOTDIR) { try await backend.removeDirectory("/d/f") }
    await assertRemoteError(ENOTEMPTY) { try await backend.removeDirectory("/d") }
    await assertRemoteError(ENOENT) { try await backend.removeFile("/missing") }
    await assertRemoteError(ENOENT) { try await backend.removeDirectory("/missing") }
    try await backend.removeFile("/d/f")
    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/d/f") }
    try await backend.removeDirectory("/d")
    let root = try await names("/")
    XCTAssertEqual(root, [])
  }

  func renames() async throws {
    try await write("/a", [1])
    try await write("/b", [2])
    _ = try await backend.createDirectory("/full", mode: 0o755)
    try await write("/full/x", [3])
    _ = try await backend.createDirectory("/empty", mode: 0o755)

    try await backend.rename(from: "/a", to: "/b")
    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/a") }
    var moved = try await contents("/b")
    XCTAssertEqual(moved, [1], "a plain rename replaces")
    await assertRemoteError(ENOENT) { try await backend.rename(from: "/a", to: "/c") }
    await assertRemoteError(ENOENT) { try await backend.rename(from: "/b", to: "/none/b") }
    await assertRemoteError(ENOTEMPTY) { try await backend.rename(from: "/empty", to: "/full") }
    await assertRemoteError(ENOTDIR) { try await backend.rename(from: "/empty", to: "/b") }
    await assertRemoteError(EISDIR) { try await backend.rename(from: "/b", to: "/empty") }
    await assertRemoteError(EINVAL) { try await backend.rename(from: "/full", to: "/full/inner") }
    try await backend.rename(from: "/empty", to: "/full/inner")
    let inside = try await names("/full")
    XCTAssertEqual(inside, ["inner", "x"])

    // Flags: exact with atomic rename flags, else EINVAL (the caller falls back).
    try await write("/c", [4])
    let atomic = await capabilities().atomicRenameFlags
    do {
      try await backend.rename(from: "/b", to: "/c", flags: .noReplace)
      XCTFail("RENAME_NOREPLACE over an existing file succeeded")
    } catch let error as RemoteError {
      XCTAssertTrue(
        error.errno == EEXIST || (!atomic && error.errno == EINVAL), "noReplace: \(error)")
    }
    moved = try await contents("/c")
    XCTAssertEqual(moved, [4], "the destination is left alone")
    do {
      try await backend.rename(from: "/b", to: "/full/x", flags: .exchange)
      let swapped = [try await contents("/b"), try await contents("/full/x")]
      XCTAssertEqual(swapped, [[3], [1]])
    } catch let error as RemoteError where !atomic && error.errno == EINVAL {
      moved = try await contents("/b")
      XCTAssertEqual(moved, [1], "a refused exchange changes nothing")
    }
    if atomic {
      await assertRemoteError(ENOENT) {
        try await backend.rename(from: "/b", to: "/none", flags: .exchange)
      }
      try await backend.rename(from: "/b", to: "/new", flags: .noReplace)
      await assertRemoteError(ENOENT) { try await backend.attributes(of: "/b") }
    }
  }

  func setAttributes() async throws {
    try await write("/f", Array("hello world".utf8))
    _ = try await backend.createDirectory("/d", mode: 0o755)
    var attributes = try await backend.setAttributes("/f", RemoteAttributeChanges(mode: 0o4755))
    XCTAssertEqual(attributes.permissions, 0o4755)
    XCTAssertEqual(attributes.type, .regular)
    // Owner before mode: the chown does not clear the setuid asked for with it.
    attributes = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(mode: 0o4711, uid: 1234, gid: 5678))
    XCTAssertEqual(attributes.permissions, 0o4711)
    XCTAssertEqual(attributes.uid, 1234)
    XCTAssertEqual(attributes.gid, 5678)

    let modified = RemoteTime(seconds: 1_600_000_000, nanoseconds: 123_456_789)
    let accessed = RemoteTime(seconds: 1_500_000_000, nanoseconds: 987_654_321)
    attributes = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(accessTime: .set(accessed), modificationTime: .set(modified)))
    XCTAssertEqual(attributes.modificationTime, modified)
    let rich = await capabilities().richAttributes
    if rich { XCTAssertEqual(attributes.accessTime, accessed) }
    attributes = try await backend.setAttributes("/f", RemoteAttributeChanges(accessTime: .now))
    XCTAssertEqual(attributes.modificationTime, modified, "UTIME_OMIT keeps mtime")

    // Truncate: grow with zeros, then shrink; an explicit mtime wins over truncation's.
    attributes = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(size: 20, modificationTime: .set(modified)))
    XCTAssertEqual(attributes.size, 20)
    XCTAssertEqual(attributes.modificationTime, modified)
    var bytes = try await contents("/f")
    XCTAssertEqual(bytes, Array("hello world".utf8) + [UInt8](repeating: 0, count: 9))
    _ = try await backend.setAttributes("/f", RemoteAttributeChanges(size: 5))
    bytes = try await contents("/f")
    XCTAssertEqual(bytes, Array("hello".utf8))

    await assertRemoteError(EISDIR) {
      try await backend.setAttributes("/d", RemoteAttributeChanges(size: 0))
    }
    await assertRemoteError(ENOENT) {
      try await backend.setAttributes("/missing", RemoteAttributeChanges(mode: 0o600))
    }
    await assertRemoteError(ENOENT) {
      try await backend.setAttributes("/missing", RemoteAttributeChanges(size: 3))
    }
    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/missing") }
  }

  func symlinks() async throws {
    let text = "../some where/\nodd"
    let attributes = try await backend.createSymlink("/link", target: text).attributes
    XCTAssertEqual(attributes.type, .symlink)
    XCTAssertEqual(attributes.size, UInt64(text.utf8.count))
    var read = try await backend.readLink("/link")
    XCTAssertEqual(read, text)
    let stat = try await backend.attributes(of: "/link")
    XCTAssertEqual(stat.type, .symlink, "lstat: not followed")
    try await write("/plain", [1])
    _ = try await backend.createDirectory("/dir", mode: 0o755)
    await assertRemoteError(EINVAL) { try await backend.readLink("/plain") }
    await assertRemoteError(ENOENT) { try await backend.readLink("/nothing") }
    await assertRemoteError(EEXIST) { try await backend.createSymlink("/plain", target: "x") }
    await assertRemoteError(EEXIST) { try await backend.createSymlink("/dir", target: "x") }
    await assertRemoteError(ENOENT) { try await backend.createSymlink("/no/l", target: "x") }
    _ = try await backend.createSymlink("/nl", target: "a\n\n")
    read = try await backend.readLink("/nl")
    XCTAssertEqual(read, "a\n\n", "trailing newlines are kept")
  }

  func hardLinks() async throws {
    let capabilities = await capabilities()
    try await write("/a", [1, 2, 3])
    guard capabilities.hardLinks else {
      do {
        _ = try await backend.link(from: "/a", to: "/b")
        XCTFail("link succeeded on a backend without hard links")
      } catch let error as RemoteError {
        XCTAssertTrue([EOPNOTSUPP, EPERM].contains(error.errno), "\(error)")
      }
      return
    }
    let attributes = try await backend.link(from: "/a", to: "/b").attributes
    XCTAssertEqual(attributes.linkCount, 2)
    await assertRemoteError(EEXIST) { try await backend.link(from: "/a", to: "/b") }
    await assertRemoteError(ENOENT) { try await backend.link(from: "/none", to: "/c") }
    await assertRemoteError(ENOENT) { try await backend.link(from: "/a", to: "/none/c") }
    _ = try await backend.createDirectory("/d", mode: 0o755)
    await assertRemoteError(EPERM) { try await backend.link(from: "/d", to: "/e") }
    _ = try await backend.createSymlink("/s", target: "nowhere")
    _ = try await backend.link(from: "/s", to: "/s2")
    let text = try await backend.readLink("/s2")
    XCTAssertEqual(text, "nowhere", "a symlink is linked, not followed")
    if capabilities.richAttributes {
      let (first, second) = (
        try await backend.attributes(of: "/a"), try await backend.attributes(of: "/b")
      )
      XCTAssertEqual(first.inode, second.inode)
      XCTAssertEqual(second.linkCount, 2)
      // An upload through one name shows through the other.
      try await write("/a", [9])
      let other = try await contents("/b")
      XCTAssertEqual(other, [9])
      // rename(2) between two names of one file does nothing.
      try await backend.rename(from: "/a", to: "/b")
      let both = try await names("/")
      XCTAssertTrue(both.contains("a") && both.contains("b"), "\(both)")
    }
    try await backend.removeFile("/a")
    let left = try await backend.attributes(of: "/b")
    if capabilities.richAttributes { XCTAssertEqual(left.linkCount, 1) }
  }

  func creation() async throws {
    var attributes = try await backend.createFile("/new", mode: 0o640, exclusive: true).attributes
    XCTAssertEqual(attributes.permissions, 0o640)
    XCTAssertEqual(attributes.size, 0)
    await assertRemoteError(EEXIST) {
      try await backend.createFile("/new", mode: 0o600, exclusive: true)
    }
    try await write("/new", [9, 9])
    attributes = try await backend.createFile("/new", mode: 0o600, exclusive: false).attributes
    XCTAssertEqual(attributes.size, 2, "a non-exclusive create leaves an existing file alone")
    _ = try await backend.createSymlink("/dl", target: "dangling")
    await assertRemoteError(EEXIST) {
      try await backend.createFile("/dl", mode: 0o600, exclusive: true)
    }
    await assertRemoteError(ENOENT) { try await backend.attributes(of: "/dangling") }
    await assertRemoteError(ENOENT) {
      try await backend.createFile("/none/f", mode: 0o600, exclusive: true)
    }
    _ = try await backend.createDirectory("/dir", mode: 0o2710)
    await assertRemoteError(EISDIR) {
      try await backend.createFile("/dir", mode: 0o600, exclusive: false)
    }
    attributes = try await backend.attributes(of: "/dir")
    XCTAssertEqual(attributes.type, .directory)
    XCTAssertEqual(attributes.permissions, 0o2710)
    attributes = try await backend.makeNode("/fifo", mode: S_IFIFO | 0o620, device: 0).attributes
    XCTAssertEqual(attributes.type, .fifo)
    XCTAssertEqual(attributes.permissions, 0o620)
    await assertRemoteError(EEXIST) {
      try await backend.makeNode("/fifo", mode: S_IFIFO | 0o620, device: 0)
    }
    await assertRemoteError(ENOENT) {
      try await backend.makeNode("/none/fifo", mode: S_IFIFO | 0o620, device: 0)
    }
    await assertRemoteError(ENOTDIR) { try await backend.createDirectory("/new/d", mode: 0o755) }
    await assertRemoteError(ENOTDIR) {
      try await backend.createFile("/new/f", mode: 0o600, exclusive: true)
    }
    await assertRemoteError(EINVAL) {
      try await backend.setAttributes("/fifo", RemoteAttributeChanges(size: 0))
    }
    await assertRemoteError(EOPNOTSUPP) {
      try await backend.setAttributes("/dl", RemoteAttributeChanges(mode: 0o600))
    }
  }

  /// Ranged reads and downloads, checked against the size stat'ed before them.
  func reads() async throws {
    let content = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
    try await write("/big", content)
    let size = UInt64(content.count)
    var bytes = try await backend.read("/big", offset: 4096, length: 10_000, expectedSize: size)
    XCTAssertEqual(bytes, Array(content[4096..<14_096]))
    bytes = try await backend.read("/big", offset: 99_000, length: 4096, expectedSize: size)
    XCTAssertEqual(bytes, Array(content[99_000...]), "a read across the end is short, no error")
    bytes = try await backend.read("/big", offset: size, length: 10, expectedSize: size)
    XCTAssertEqual(bytes, [], "at the end: no bytes")
    bytes = try await backend.read("/big", offset: 0, length: 10, expectedSize: size / 2)
    XCTAssertEqual(bytes, Array(content[0..<10]), "a file that grew is no error")
    bytes = try await backend.read("/big", offset: 99_990, length: 100, expectedSize: 0)
    XCTAssertEqual(bytes, Array(content[99_990...]), "expectedSize 0 skips the check")
    // The file shrank since it was stat'ed: truncation, EIO.
    await assertRemoteError(EIO) {
      try await backend.read("/big", offset: 90_000, length: 20_000, expectedSize: size + 5000)
    }
    await assertRemoteError(ENOENT) {
      try await backend.read("/missing", offset: 0, length: 1, expectedSize: 1)
    }

    let target = scratch + "/download"
    let count = try await backend.download("/big", expectedSize: size, to: target)
    XCTAssertEqual(count, size)
    XCTAssertEqual(FileManager.default.contents(atPath: target).map { [UInt8]($0) }, content)
    await assertRemoteError(EIO) {
      try await backend.download("/big", expectedSize: size + 1, to: target)
    }
    await assertRemoteError(ENOENT) {
      try await backend.download("/missing", expectedSize: 0, to: target)
    }
  }

  func uploads() async throws {
    let local = try localFile("source", Array("first".utf8))
    let answer = try await backend.upload("/u", from: local)
    if let answer { XCTAssertEqual(answer.attributes.size, 5) }
    var bytes = try await contents("/u")
    XCTAssertEqual(bytes, Array("first".utf8))
    _ = try await backend.setAttributes("/u", RemoteAttributeChanges(mode: 0o751))
    try await write("/u", Array("second, longer".utf8))
    bytes = try await contents("/u")
    XCTAssertEqual(bytes, Array("second, longer".utf8))
    if await capabilities().richAttributes {
      let mode = try await backend.attributes(of: "/u").permissions
      XCTAssertEqual(mode, 0o751, "an upload keeps the mode")
    }
    // Rewriting a file leaves its directory's mtime, as on Linux (rsync -t of folders).
    _ = try await backend.createDirectory("/kept", mode: 0o755)
    try await write("/kept/f", [1])
    let fixed = RemoteTime(seconds: 1_400_000_000, nanoseconds: 3)
    _ = try await backend.setAttributes(
      "/kept", RemoteAttributeChanges(modificationTime: .set(fixed)))
    try await write("/kept/f", [2])
    let folder = try await backend.attributes(of: "/kept")
    XCTAssertEqual(folder.modificationTime, fixed)
    try await backend.upload("/empty", from: nil)
    let empty = try await backend.attributes(of: "/empty")
    XCTAssertEqual(empty.size, 0)
    await assertRemoteError(ENOENT) { try await backend.upload("/none/u", from: local) }

    // Ranges in place, when the backend has them.
    let ranged = try localFile("ranged", Array("0123456789abcdef".utf8))
    do {
      _ = try await backend.writeRanges(
        "/u", from: ranged, ranges: [2..<4, 10..<12], truncateFirst: 12, size: 16)
      bytes = try await contents("/u")
      XCTAssertEqual(bytes, Array("se23nd, loab".utf8) + [0, 0, 0, 0])
    } catch let error as RemoteError where error.errno == EOPNOTSUPP {}
  }

  /// Changes in order, each answered on its own; EOPNOTSUPP for a backend without batches.
  func batches() async throws {
    try await write("/e", [1, 2])
    let changes: [RemoteBatchChange] = [
      .makeDirectory("/d", mode: 0o700),
      .put(
        "/d/f", content: Array("hello\n".utf8), mode: 0o600,
        changes: RemoteAttributeChanges(
          modificationTime: .set(RemoteTime(seconds: 1_500_000_000, nanoseconds: 7)))),
      .removeDirectory("/missing"),
      .symlink("/d/l", target: "f"),
      .removeFile("/d/l"),
      // Another path: stock envd's batch uploads every put in one request, and refuses two
      // of one path (HTTP 400).
      .put(
        "/e", content: [1], mode: 0o600, changes: RemoteAttributeChanges(),
        expected: RemoteFileVersion(size: 99, modificationTime: RemoteTime(seconds: 1))),
    ]
    let results: [Result<RemoteAttributes?, RemoteError>]
    do {
      results = try await backend.applyBatch(changes)
    } catch let error as RemoteError where error.errno == EOPNOTSUPP {
      let declared = await capabilities().batchChanges
      XCTAssertFalse(declared, "batchChanges is declared, yet a batch is refused")
      return
    }
    XCTAssertEqual(results.count, changes.count)
    guard results.count == changes.count else { return }
    let put = try results[1].get()
    XCTAssertEqual(put?.permissions, 0o600)
    XCTAssertEqual(put?.size, 6)
    XCTAssertEqual(put?.modificationTime, RemoteTime(seconds: 1_500_000_000, nanoseconds: 7))
    XCTAssertEqual(results[2].errno, ENOENT)
    XCTAssertNil(try results[4].get(), "a removal answers nil")
    XCTAssertEqual(results[5].errno, ESTALE, "the file is not the version expected")
    let content = try await contents("/d/f")
    XCTAssertEqual(content, Array("hello\n".utf8))
    let left = try await names("/d")
    XCTAssertEqual(left, ["f"])
    let kept = try await contents("/e")
    XCTAssertEqual(kept, [1, 2])
  }

  /// A listing's attributes are what a stat of each entry says: the mount caches either.
  func listingsMatchStats() async throws {
    try await write("/file", [1, 2, 3])
    _ = try await backend.setAttributes(
      "/file",
      RemoteAttributeChanges(
        mode: 0o604, modificationTime: .set(RemoteTime(seconds: 1_300_000_000, nanoseconds: 9))))
    _ = try await backend.createDirectory("/dir", mode: 0o711)
    _ = try await backend.createSymlink("/link", target: "file")
    _ = try await backend.makeNode("/fifo", mode: S_IFIFO | 0o600, device: 0)
    for entry in try await backend.listDirectory("/") {
      let stat = try await backend.attributes(of: "/" + entry.name)
      let listed = entry.attributes
      XCTAssertEqual(listed.type, stat.type, entry.name)
      XCTAssertEqual(listed.permissions, stat.permissions, entry.name)
      XCTAssertEqual(listed.modificationTime, stat.modificationTime, entry.name)
      if stat.type != .directory { XCTAssertEqual(listed.size, stat.size, entry.name) }
      if let target = listed.symlinkTarget { XCTAssertEqual(target, "file") }
    }
  }

  /// Many changes at once: each gets its own answer.
  func concurrentChanges() async throws {
    _ = try await backend.createDirectory("/many", mode: 0o755)
    for index in 0..<24 { try await write("/many/\(index)", [UInt8(index)]) }
    let backend = backend
    try await withThrowingTaskGroup(of: Void.self) { group in
      for index in 0..<24 {
        group.addTask {
          let attributes = try await backend.setAttributes(
            "/many/\(index)", RemoteAttributeChanges(mode: 0o600 + UInt32(index % 8)))
          XCTAssertEqual(attributes.permissions, 0o600 + UInt32(index % 8))
        }
      }
      group.addTask {
        await assertRemoteError(ENOENT) {
          try await backend.setAttributes("/many/none", RemoteAttributeChanges(mode: 0o600))
        }
      }
      try await group.waitForAll()
    }
    for entry in try await backend.listDirectory("/many") {
      XCTAssertEqual(entry.attributes.permissions, 0o600 + UInt32(Int(entry.name)! % 8))
    }
  }

  func statistics() async throws {
    let statistics = try await backend.filesystemStatistics()
    XCTAssertGreaterThan(statistics.totalBytes, 0)
    XCTAssertLessThanOrEqual(statistics.usedBytes, statistics.totalBytes)
    if let length = statistics.maximumNameLength { XCTAssertEqual(length, 255) }
  }

  func fsync() async throws {
    try await write("/s", [1])
    try await backend.synchronize("/s", dataOnly: false)
    try await backend.synchronize("/s", dataOnly: true)
    await assertRemoteError(ENOENT) { try await backend.synchronize("/none", dataOnly: false) }
  }
}

extension Result where Failure == RemoteError {
  /// The errno of a failure, nil for a success.
  var errno: Int32? {
    if case .failure(let error) = self { return error.errno }
    return nil
  }
}
