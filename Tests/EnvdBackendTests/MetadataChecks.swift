import Backend
import Foundation
import TestSupport
import XCTest

/// POSIX metadata checks run against the agent in both modes (extension, and `--envd-compat`
/// with process fallbacks), each compared with the agent's root on disk. What needs no disk
/// runs against every backend in BackendConformanceTests.
struct MetadataChecks {
  let fixture: AgentFixture
  let backend: any RemoteFilesystem
  let hasExtension: Bool

  func diskStat(_ relative: String) -> stat {
    var info = stat()
    XCTAssertEqual(lstat(fixture.path(relative), &info), 0, "lstat \(relative)")
    return info
  }

  func setAttributes() async throws {
    try fixture.write("/f", Array("hello world".utf8))
    var attributes = try await backend.setAttributes("/f", RemoteAttributeChanges(mode: 0o4755))
    XCTAssertEqual(diskStat("/f").st_mode & 0o7777, 0o4755)
    XCTAssertEqual(attributes.permissions, 0o4755)
    XCTAssertEqual(attributes.type, .regular)

    try fixture.makeDirectory("/d")
    chmod(fixture.path("/d"), 0o2755)
    _ = try await backend.setAttributes("/d", RemoteAttributeChanges(mode: 0o1777))
    XCTAssertEqual(diskStat("/d").st_mode & 0o7777, 0o1777, "a numeric mode clears setgid")

    // chown (the tests run as root), then mode after owner: setuid survives.
    attributes = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(mode: 0o4711, uid: 1234, gid: 5678))
    var info = diskStat("/f")
    XCTAssertEqual(info.st_uid, 1234)
    XCTAssertEqual(info.st_gid, 5678)
    XCTAssertEqual(info.st_mode & 0o7777, 0o4711)
    XCTAssertEqual(attributes.uid, 1234)
    XCTAssertEqual(attributes.gid, 5678)
    _ = try await backend.setAttributes("/f", RemoteAttributeChanges(gid: 42))
    XCTAssertEqual(diskStat("/f").st_uid, 1234)
    XCTAssertEqual(diskStat("/f").st_gid, 42)

    // Times with nanoseconds; atime alone leaves mtime.
    let modified = RemoteTime(seconds: 1_600_000_000, nanoseconds: 123_456_789)
    let accessed = RemoteTime(seconds: 1_500_000_000, nanoseconds: 987_654_321)
    attributes = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(accessTime: .set(accessed), modificationTime: .set(modified)))
    info = diskStat("/f")
    XCTAssertEqual(info.st_mtim.tv_sec, 1_600_000_000)
    XCTAssertEqual(info.st_mtim.tv_nsec, 123_456_789)
    XCTAssertEqual(info.st_atim.tv_sec, 1_500_000_000)
    XCTAssertEqual(info.st_atim.tv_nsec, 987_654_321)
    XCTAssertEqual(attributes.modificationTime, modified)
    XCTAssertEqual(attributes.accessTime, accessed)
    _ = try await backend.setAttributes("/f", RemoteAttributeChanges(accessTime: .now))
    info = diskStat("/f")
    XCTAssertEqual(info.st_mtim.tv_nsec, 123_456_789, "UTIME_OMIT keeps mtime")
    XCTAssertGreaterThan(info.st_atim.tv_sec, 1_700_000_000)
    let sameTime = RemoteTime(seconds: 1_234_567_890, nanoseconds: 5)
    _ = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(accessTime: .set(sameTime), modificationTime: .set(sameTime)))
    XCTAssertEqual(diskStat("/f").st_atim.tv_nsec, 5)
    XCTAssertEqual(diskStat("/f").st_mtim.tv_nsec, 5)

    // Truncate: grow with zeros, shrink, same inode; explicit mtime wins over truncation's.
    let inode = diskStat("/f").st_ino
    attributes = try await backend.setAttributes(
      "/f", RemoteAttributeChanges(size: 20, modificationTime: .set(modified)))
    XCTAssertEqual(
      try fixture.contents("/f"), Array("hello world".utf8) + [UInt8](repeating: 0, count: 9))
    XCTAssertEqual(attributes.size, 20)
    XCTAssertEqual(diskStat("/f").st_mtim.tv_nsec, 123_456_789)
    _ = try await backend.setAttributes("/f", RemoteAttributeChanges(size: 5))
    XCTAssertEqual(try fixture.contents("/f"), Array("hello".utf8))
    XCTAssertEqual(diskStat("/f").st_ino, inode)

    await assertRemoteError(EISDIR) {
      try await backend.setAttributes("/d", RemoteAttributeChanges(size: 0))
    }
    await assertRemoteError(ENOENT) {
      try await backend.setAttributes("/missing", RemoteAttributeChanges(mode: 0o600))
    }
    await assertRemoteError(ENOENT) {
      try await backend.setAttributes("/missing", RemoteAttributeChanges(size: 3))
    }
    XCTAssertFalse(fixture.exists("/missing"), "truncate must not create")
  }

  func symlinks() async throws {
    let text = "../some where/\nodd"
    let attributes = try await backend.createSymlink("/link", target: text).attributes
    XCTAssertEqual(attributes.type, .symlink)
    XCTAssertEqual(attributes.size, UInt64(text.utf8.count))
    XCTAssertEqual(
      try FileManager.default.destinationOfSymbolicLink(atPath: fixture.path("/link")), text)
    let read = try await backend.readLink("/link")
    XCTAssertEqual(read, text)
    let stat = try await backend.attributes(of: "/link")
    XCTAssertEqual(stat.type, .symlink)
    try fixture.write("/plain", [1])
    await assertRemoteError(EINVAL) { try await backend.readLink("/plain") }
    await assertRemoteError(ENOENT) { try await backend.readLink("/nothing") }
    await assertRemoteError(EEXIST) { try await backend.createSymlink("/plain", target: "x") }
    try fixture.makeDirectory("/dir")
    await assertRemoteError(EEXIST) { try await backend.createSymlink("/dir", target: "x") }
    XCTAssertFalse(fixture.exists("/dir/x"))
    await assertRemoteError(ENOENT) { try await backend.createSymlink("/no/l", target: "x") }
    // A link whose text ends in newlines is read back exactly.
    _ = try await backend.createSymlink("/nl", target: "a\n\n")
    let newlines = try await backend.readLink("/nl")
    XCTAssertEqual(newlines, "a\n\n")
  }

  func hardLinks() async throws {
    try fixture.write("/a", [1, 2, 3])
    let attributes = try await backend.link(from: "/a", to: "/b").attributes
    XCTAssertEqual(diskStat("/a").st_ino, diskStat("/b").st_ino)
    XCTAssertEqual(diskStat("/a").st_nlink, 2)
    XCTAssertEqual(attributes.linkCount, 2)
    XCTAssertEqual(attributes.inode, UInt64(diskStat("/a").st_ino))
    await assertRemoteError(EEXIST) { try await backend.link(from: "/a", to: "/b") }
    await assertRemoteError(ENOENT) { try await backend.link(from: "/none", to: "/c") }
    try fixture.makeDirectory("/d")
    await assertRemoteError(EPERM) { try await backend.link(from: "/d", to: "/e") }
    // A symlink is linked itself.
    symlink("nowhere", fixture.path("/s"))
    _ = try await backend.link(from: "/s", to: "/s2")
    XCTAssertEqual(
      try FileManager.default.destinationOfSymbolicLink(atPath: fixture.path("/s2")), "nowhere")
  }

  func renameFlags() async throws {
    try fixture.write("/x", [1])
    try fixture.write("/y", [2])
    await assertRemoteError(EEXIST) {
      try await backend.rename(from: "/x", to: "/y", flags: .noReplace)
    }
    XCTAssertEqual(try fixture.contents("/y"), [2])
    try await backend.rename(from: "/x", to: "/z", flags: .noReplace)
    XCTAssertEqual(try fixture.contents("/z"), [1])
    XCTAssertFalse(fixture.exists("/x"))
    if hasExtension {
      try await backend.rename(from: "/y", to: "/z", flags: .exchange)
      XCTAssertEqual(try fixture.contents("/y"), [1])
      XCTAssertEqual(try fixture.contents("/z"), [2])
    } else {
      await assertRemoteError(EINVAL) {
        try await backend.rename(from: "/y", to: "/z", flags: .exchange)
      }
    }
    // Plain rename replaces.
    try await backend.rename(from: "/y", to: "/z")
    XCTAssertFalse(fixture.exists("/y"))
  }

  func creation() async throws {
    var attributes = try await backend.createFile("/new", mode: 0o640, exclusive: true).attributes
    XCTAssertEqual(diskStat("/new").st_mode, S_IFREG | 0o640)
    XCTAssertEqual(attributes.permissions, 0o640)
    XCTAssertEqual(attributes.size, 0)
    await assertRemoteError(EEXIST) {
      try await backend.createFile("/new", mode: 0o600, exclusive: true)
    }
    try fixture.write("/new", [9, 9])
    attributes = try await backend.createFile("/new", mode: 0o600, exclusive: false).attributes
    XCTAssertEqual(attributes.size, 2, "a non-exclusive create leaves an existing file alone")
    XCTAssertEqual(diskStat("/new").st_mode & 0o777, 0o640)
    symlink("dangling", fixture.path("/dl"))
    await assertRemoteError(EEXIST) {
      try await backend.createFile("/dl", mode: 0o600, exclusive: true)
    }
    XCTAssertFalse(fixture.exists("/dangling"))
    await assertRemoteError(ENOENT) {
      try await backend.createFile("/none/f", mode: 0o600, exclusive: true)
    }

    attributes = try await backend.createDirectory("/dir", mode: 0o2710).attributes
    XCTAssertEqual(diskStat("/dir").st_mode, S_IFDIR | 0o2710)
    XCTAssertEqual(attributes.type, .directory)
    await assertRemoteError(EEXIST) { try await backend.createDirectory("/dir", mode: 0o755) }
    await assertRemoteError(EEXIST) { try await backend.createDirectory("/new", mode: 0o755) }
    await assertRemoteError(ENOENT) { try await backend.createDirectory("/a/b", mode: 0o755) }

    attributes = try await backend.makeNode("/fifo", mode: S_IFIFO | 0o620, device: 0).attributes
    XCTAssertEqual(diskStat("/fifo").st_mode, S_IFIFO | 0o620)
    XCTAssertEqual(attributes.type, .fifo)
    if getuid() == 0 {
      // The sandbox's root makes the device (the agent itself, or mknod(1) on stock envd).
      attributes = try await backend.makeNode("/dev", mode: S_IFCHR | 0o600, device: 0x0103)
        .attributes
      XCTAssertEqual(diskStat("/dev").st_mode, S_IFCHR | 0o600)
      XCTAssertEqual(diskStat("/dev").st_rdev, 0x0103)
    } else {
      await assertRemoteError(EPERM) {
        try await backend.makeNode("/dev", mode: S_IFCHR | 0o600, device: 0x0103)
      }
    }
  }

  func removal() async throws {
    try fixture.write("/d/f", [1])
    try fixture.makeDirectory("/e")
    await assertRemoteError(EISDIR) { try await backend.removeFile("/d") }
    await assertRemoteError(ENOTDIR) { try await backend.removeDirectory("/d/f") }
    await assertRemoteError(ENOTEMPTY) { try await backend.removeDirectory("/d") }
    await assertRemoteError(ENOENT) { try await backend.removeFile("/nothing") }
    try await backend.removeFile("/d/f")
    try await backend.removeDirectory("/d")
    try await backend.removeDirectory("/e")
    XCTAssertFalse(fixture.exists("/d"))
  }

  func statistics() async throws {
    let remote = try await backend.filesystemStatistics()
    var local = statvfs()
    statvfs(fixture.root, &local)
    XCTAssertEqual(remote.totalBlocks, UInt64(local.f_blocks))
    XCTAssertEqual(remote.blockSize, UInt64(local.f_frsize))
    XCTAssertEqual(remote.totalFiles, UInt64(local.f_files))
    XCTAssertEqual(remote.maximumNameLength, 255)
    XCTAssertGreaterThan(remote.totalBytes, 0)
  }

  /// Many setattrs at once: each gets its own answer (on stock envd, batched into few processes).
  func concurrentChanges() async throws {
    for index in 0..<24 { try fixture.write("/many/\(index)", [UInt8(index)]) }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for index in 0..<24 {
        group.addTask {
          let attributes = try await backend.setAttributes(
            "/many/\(index)",
            RemoteAttributeChanges(
              mode: 0o600 + UInt32(index % 8),
              modificationTime: .set(RemoteTime(seconds: 1_000_000 + Int64(index), nanoseconds: 7)))
          )
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
    for index in 0..<24 {
      let info = diskStat("/many/\(index)")
      XCTAssertEqual(info.st_mode & 0o777, 0o600 + mode_t(index % 8))
      XCTAssertEqual(info.st_mtim.tv_sec, 1_000_000 + index)
    }
  }

  func fsync() async throws {
    try fixture.write("/s", [1])
    try await backend.synchronize("/s", dataOnly: false)
    try await backend.synchronize("/s", dataOnly: true)
    await assertRemoteError(ENOENT) { try await backend.synchronize("/none", dataOnly: false) }
  }
}
