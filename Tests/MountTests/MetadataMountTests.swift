import Foundation
import TestSupport
import XCTest

/// The issue-4 operations through a real mount, checked against the agent's root on disk. Each
/// check runs against the extension and against stock envd (`--envd-compat`, process fallbacks).
final class MetadataMountTests: MountTestCase {
  func testModesOwnersAndTimes() throws { try modesOwnersAndTimes() }
  func testNamesAndLimits() throws { try namesAndLimits(hasExtension: true) }
}

final class MetadataMountStockTests: MountTestCase {
  override var agentArguments: [String] { ["--envd-compat"] }

  func testModesOwnersAndTimes() throws { try modesOwnersAndTimes() }
  func testNamesAndLimits() throws { try namesAndLimits(hasExtension: false) }
}

/// `-o idmap=none` shows the remote numeric owners (with the extension).
final class IdmapNoneMountTests: MountTestCase {
  override var mountArguments: [String] { ["-o", "idmap=none"] }

  func testRemoteOwnersShow() throws {
    try sh("echo x > root/owned && chown 4321:8765 root/owned")
    XCTAssertEqual(try sh("stat -c '%u %g' mnt/owned"), "4321 8765\n")
    try sh("chown 1111:2222 mnt/owned")
    XCTAssertEqual(try sh("stat -c '%u %g' root/owned"), "1111 2222\n")
  }
}

/// `-o idmap=none` on stock envd: the owner names envd gives become ids through the sandbox's
/// /etc/passwd and /etc/group (a number for an id without a name); chown shows; devices are made.
final class IdmapNoneStockMountTests: MountTestCase {
  override var agentArguments: [String] { ["--envd-compat"] }
  override var mountArguments: [String] { ["-o", "idmap=none,allow_other,default_permissions"] }

  func testRemoteOwnersShow() throws {
    try sh("echo x > root/owned && chown 4321:8765 root/owned && echo y > root/daemon")
    try sh("chown 1:1 root/daemon")  // daemon:daemon, a name envd gives
    XCTAssertEqual(try sh("stat -c '%u %g' mnt/owned mnt/daemon"), "4321 8765\n1 1\n")
    try sh("chown 1111:2222 mnt/owned && chgrp 1 mnt/daemon")
    XCTAssertEqual(try sh("stat -c '%u %g' root/owned root/daemon"), "1111 2222\n1 1\n")
    XCTAssertEqual(try sh("stat -c '%u %g' mnt/owned"), "1111 2222\n")
    // A non-owner's chmod is refused by the kernel, from the owner it now sees.
    try sh("chmod 755 . root")
    let refused = try shStatus("setpriv --reuid=4 --regid=4 --clear-groups chmod 600 mnt/owned")
    XCTAssertTrue(refused.error.contains("Operation not permitted"), refused.error)
  }

  func testDeviceNodes() throws {
    try sh("mknod mnt/null c 1 3 && mknod mnt/loop b 7 0 && mkfifo mnt/fifo")
    XCTAssertEqual(
      try sh("stat -c '%F %t %T' root/null root/loop root/fifo"),
      "character special file 1 3\nblock special file 7 0\nfifo 0 0\n")
    XCTAssertEqual(
      try sh("stat -c '%F %t %T' mnt/null mnt/loop"),
      "character special file 1 3\nblock special file 7 0\n")
    // A listing's answer carries the device number too.
    XCTAssertEqual(
      try sh("ls -ln mnt | grep null | tr -s ' ' | cut -d' ' -f1,5,6"), "crw-r--r-- 1, 3\n")
  }
}

/// Without write-back on stock envd a rewrite is envd's in-place upload, which chowns the file
/// to envd's user: the owner and mode are put back.
final class StockWriteThroughOwnerTests: MountTestCase {
  override var agentArguments: [String] { ["--envd-compat"] }
  override var mountArguments: [String] { ["--write-back", "off"] }

  func testARewrittenFileKeepsItsOwner() throws {
    try sh("echo old > root/f && chown 4321:8765 root/f && chmod 6750 root/f && cat mnt/f")
    try sh("echo new > mnt/f")
    XCTAssertEqual(try sh("cat root/f && stat -c '%u %g %a' root/f"), "new\n4321 8765 6750\n")
  }
}

extension MountTestCase {
  func modesOwnersAndTimes() throws {
    try sh(
      """
      set -e
      cd mnt
      echo hi > f && chmod 4755 f && mkdir d && chmod 3775 d
      touch -d @1500000000.123456789 f
      test "$(stat -c '%a %.9Y' f)" = "4755 1500000000.123456789"
      sync .
      test "$(stat -c '%a %.9Y' ../root/f)" = "4755 1500000000.123456789"
      test "$(stat -c %a ../root/d)" = 3775
      truncate -s 100000 f && sync . && test "$(stat -c %s ../root/f)" = 100000
      truncate -s 1 f && sync . && test "$(cat ../root/f)" = h
      ln -s 'some target/x' l && test "$(readlink l)" = 'some target/x'
      sync . && test "$(readlink ../root/l)" = 'some target/x'
      ln f hard && test "$(stat -c %h hard)" = 2
      test "$(stat -c %i ../root/f)" = "$(stat -c %i ../root/hard)"
      mkfifo p && sync . && test "$(stat -c %F ../root/p)" = fifo
      """)
  }

  func namesAndLimits(hasExtension: Bool) throws {
    let long = String(repeating: "n", count: 256)
    let result = try shStatus("touch mnt/\(long)")
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("File name too long"), result.error)
    let exclusive = try shStatus("cd mnt && echo a > x && set -C && echo b > x")
    XCTAssertNotEqual(exclusive.status, 0)
    XCTAssertEqual(try sh("cat root/x"), "a\n")
    // statfs: the numbers of the root's file system.
    XCTAssertEqual(try sh("stat -f -c '%S %b %c' mnt"), try sh("stat -f -c '%S %b %c' root"))
    XCTAssertEqual(
      try sh("test -r mnt/x && test -w mnt/x && ! test -x mnt/x && echo ok"), "ok\n")
  }
}
