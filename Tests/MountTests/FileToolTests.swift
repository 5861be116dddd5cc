import Foundation
import TestSupport
import XCTest

/// Ordinary tools on the mount, each result compared with the agent's root folder.
final class FileToolTests: MountTestCase {
  /// A small tree with nested folders, an empty file and a file bigger than one FUSE write.
  private func makeTree(at folder: String) throws {
    try sh(
      """
      mkdir -p '\(folder)/a/b/c' '\(folder)/empty-dir' '\(folder)/d'
      echo hello > '\(folder)/top.txt'
      : > '\(folder)/a/empty.txt'
      head -c 3000000 /dev/urandom > '\(folder)/a/b/three-megabytes.bin'
      for i in $(seq 1 30); do echo "file $i" > "\(folder)/d/f$i.txt"; done
      printf 'deep' > '\(folder)/a/b/c/deep.txt'
      """)
  }

  func testCopyTreeInAndOut() throws {
    try makeTree(at: scratch + "/tree")
    try sh("cp -r scratch/tree mnt/tree")
    try sh("diff -r scratch/tree root/tree")
    try sh("cp -r mnt/tree scratch/back")
    try sh("diff -r scratch/tree scratch/back")
    try assertMountMatchesRoot()
  }

  func testListingsMatchRoot() throws {
    try makeTree(at: root + "/tree")
    XCTAssertEqual(
      try sh("ls -l mnt/tree/d | awk 'NR > 1 {print $5, $9}'"),
      try sh("ls -l root/tree/d | awk 'NR > 1 {print $5, $9}'"))
    XCTAssertEqual(
      try sh("cd mnt && find . | LC_ALL=C sort"), try sh("cd root && find . | LC_ALL=C sort"))
    try assertMountMatchesRoot()
  }

  func testMoveWithinAndAcrossFolders() throws {
    try makeTree(at: root + "/tree")
    try sh("mv mnt/tree/top.txt mnt/tree/renamed.txt")
    try sh("mv mnt/tree/d/f1.txt mnt/tree/a/b/c/")
    try sh("mv mnt/tree/a/b mnt/tree/d/moved-b")
    try sh("mv mnt/tree/d/f2.txt mnt/tree/d/f3.txt")  // over an existing file
    XCTAssertEqual(try sh("cat root/tree/renamed.txt"), "hello\n")
    XCTAssertEqual(try sh("cat mnt/tree/d/moved-b/c/f1.txt"), "file 1\n")
    XCTAssertEqual(try sh("cat mnt/tree/d/f3.txt"), "file 2\n")
    try sh("true")  // (after the mount's changes reached the agent's folder)
    XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/tree/a/b"))
    try assertMountMatchesRoot()
  }

  func testRemoveTreeAndMakeParents() throws {
    try makeTree(at: root + "/tree")
    try sh("rm -r mnt/tree/a")
    try sh("true")
    XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/tree/a"))
    try sh("mkdir -p mnt/tree/x/y/z && touch mnt/tree/x/y/z/new")
    try sh("true")
    XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/tree/x/y/z/new"))
    try sh("rm -r mnt/tree")
    XCTAssertEqual(try sh("ls -A root"), "")
    try assertMountMatchesRoot()
  }

  func testAppendTruncateAndOverwriteInPlace() throws {
    try sh("echo one > mnt/log.txt && echo two >> mnt/log.txt && echo three >> mnt/log.txt")
    XCTAssertEqual(try sh("cat root/log.txt"), "one\ntwo\nthree\n")

    try sh("truncate -s 4 mnt/log.txt")
    XCTAssertEqual(try sh("cat root/log.txt"), "one\n")
    try sh("truncate -s 10 mnt/log.txt")
    XCTAssertEqual(try sh("stat -c %s root/log.txt"), "10\n")
    try sh("truncate -s 0 mnt/log.txt")
    XCTAssertEqual(try sh("stat -c %s root/log.txt"), "0\n")

    try sh("printf 'hello world' > mnt/greeting.txt")
    try sh("printf 'WORLD' | dd of=mnt/greeting.txt bs=1 seek=6 conv=notrunc status=none")
    XCTAssertEqual(try sh("cat root/greeting.txt"), "hello WORLD")
    try sh("echo replaced > mnt/greeting.txt")
    XCTAssertEqual(try sh("cat root/greeting.txt"), "replaced\n")
    try assertMountMatchesRoot()
  }

  /// Two descriptors on one file share its staging file: a write through one is read through
  /// the other before any close.
  func testWriteIsVisibleThroughAnotherDescriptor() throws {
    try sh("printf 'before' > mnt/shared.txt")
    let path = mountpoint + "/shared.txt"
    let writer = open(path, O_WRONLY)
    XCTAssertGreaterThanOrEqual(writer, 0)
    let reader = open(path, O_RDONLY)
    XCTAssertGreaterThanOrEqual(reader, 0)
    defer {
      close(reader)
    }
    let text = Array("AFTER!".utf8)
    XCTAssertEqual(pwrite(writer, text, text.count, 0), text.count)
    var buffer = [UInt8](repeating: 0, count: 16)
    let count = pread(reader, &buffer, buffer.count, 0)
    XCTAssertEqual(String(decoding: buffer[..<max(count, 0)], as: UTF8.self), "AFTER!")
    XCTAssertEqual(close(writer), 0)
    XCTAssertEqual(try sh("cat root/shared.txt"), "AFTER!")
  }
}
