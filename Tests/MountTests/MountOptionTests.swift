import Foundation
import TestSupport
import XCTest

/// `-o uid=,gid=` set the owner every file shows (by default: the mounting user).
final class OwnerMappingTests: MountTestCase {
  override var mountArguments: [String] { ["-o", "uid=1234,gid=5678"] }

  func testFilesShowTheMappedOwner() throws {
    try sh("mkdir root/folder && echo x > root/folder/file")
    XCTAssertEqual(
      try sh("stat -c '%u %g %h' mnt/folder mnt/folder/file"), "1234 5678 2\n1234 5678 1\n")
  }
}

/// `--read-only` mounts read-only: reads work, every change is EROFS.
final class ReadOnlyTests: MountTestCase {
  override var mountArguments: [String] { ["--read-only"] }

  func testChangesAreRefused() throws {
    try sh("echo content > root/file")
    XCTAssertEqual(try sh("cat mnt/file"), "content\n")
    errno = 0
    XCTAssertEqual(open(mountpoint + "/file", O_WRONLY), -1)
    XCTAssertEqual(errno, EROFS)
    XCTAssertEqual(mkdir(mountpoint + "/new", 0o755), -1)
    XCTAssertEqual(errno, EROFS)
    XCTAssertEqual(try sh("cat root/file"), "content\n")
  }
}

/// Metadata as `stat` shows it: sizes, block counts and stable inode numbers.
final class StatTests: MountTestCase {
  func testSizesBlocksAndStableInodes() throws {
    try sh("head -c 1000 /dev/zero > root/file && mkdir root/dir")
    // Sizes, blocks and link counts are the backing file's, as the agent extension reports them.
    XCTAssertEqual(
      try sh("stat -c '%s %b %h %F' mnt/file"), try sh("stat -c '%s %b %h %F' root/file"))
    XCTAssertEqual(try sh("stat -c '%s %h %F' mnt/file"), "1000 1 regular file\n")
    let first = try sh("stat -c %i mnt/file mnt/dir")
    Thread.sleep(forTimeInterval: 1.2)  // past the attribute and entry timeouts
    XCTAssertEqual(try sh("stat -c %i mnt/file mnt/dir"), first)
    try sh("mv mnt/file mnt/dir/moved")
    XCTAssertEqual(
      try sh("stat -c %i mnt/dir/moved"), String(first.split(separator: "\n")[0]) + "\n")
  }

  /// O_CREAT without O_TRUNC on an existing file opens it: nothing is emptied.
  func testCreateOfAnExistingFileKeepsItsContent() throws {
    try sh("ls mnt")  // lists the root, so the mount's caches know it
    try sh("echo kept > root/late.txt")  // appears behind the mount's back
    let descriptor = open(mountpoint + "/late.txt", O_WRONLY | O_CREAT, 0o644)
    XCTAssertGreaterThanOrEqual(descriptor, 0)
    XCTAssertEqual(close(descriptor), 0)
    XCTAssertEqual(try sh("cat root/late.txt"), "kept\n")
  }

  /// fsync uploads what was written before the file is closed.
  func testFsyncUploadsBeforeClose() throws {
    let descriptor = open(mountpoint + "/synced.txt", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    XCTAssertGreaterThanOrEqual(descriptor, 0)
    let text = Array("durable\n".utf8)
    XCTAssertEqual(write(descriptor, text, text.count), text.count)
    XCTAssertEqual(fsync(descriptor), 0)
    XCTAssertEqual(try sh("cat root/synced.txt"), "durable\n")
    XCTAssertEqual(close(descriptor), 0)
  }

  func testStatfsReportsTheRemoteDisk() throws {
    var info = statvfs()
    XCTAssertEqual(statvfs(mountpoint, &info), 0)
    XCTAssertGreaterThan(info.f_blocks, 0)
    XCTAssertLessThanOrEqual(info.f_bfree, info.f_blocks)
    try sh("df -P mnt")
  }
}
