import Foundation
import TestSupport
import XCTest

/// Linux's rules through a mount shared by several users (`allow_other,default_permissions`,
/// `idmap=none`): callers other than root run through `setpriv`, and what they get (errno,
/// owner, times) is compared with what ext4 gives.
class PosixTests: MountTestCase {
  override var mountArguments: [String] { ["-o", "allow_other,default_permissions,idmap=none"] }

  override func setUpWithError() throws {
    try super.setUpWithError()
    // Other users must reach `mnt` through the work folder (mkdtemp makes it 0700).
    XCTAssertEqual(chmod(workDirectory.path, 0o755), 0)
  }

  /// `script` as uid/gid `id` (no supplementary groups), in the work folder.
  func shAs(_ id: Int, _ script: String) throws -> (status: Int32, output: String, error: String) {
    try shStatus(
      "setpriv --reuid=\(id) --regid=\(id) --clear-groups sh -c '\(script)'")
  }

  /// `script` as uid/gid `id`; fails the test when it fails.
  func asUser(_ id: Int, _ script: String, file: StaticString = #filePath, line: UInt = #line)
    throws
  {
    let result = try shAs(id, script)
    XCTAssertEqual(result.status, 0, "`\(script)` failed: \(result.error)", file: file, line: line)
  }

  func assertRefused(
    _ result: (status: Int32, output: String, error: String), with message: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertNotEqual(result.status, 0, "expected a refusal", file: file, line: line)
    XCTAssertTrue(
      result.error.contains(message), "expected '\(message)' in: \(result.error)", file: file,
      line: line)
  }

  func testFilesOfOtherUsersInAStickyFolderAreTheirs() throws {
    try sh("mkdir mnt/tmp && chmod 1777 mnt/tmp")
    XCTAssertEqual(try shAs(65534, "echo x > mnt/tmp/mine && mkdir mnt/tmp/dir").status, 0)
    XCTAssertEqual(try sh("stat -c %u:%g mnt/tmp/mine"), "65534:65534\n")
    assertRefused(try shAs(65533, "rm -f mnt/tmp/mine"), with: "Operation not permitted")
    assertRefused(try shAs(65533, "mv mnt/tmp/mine mnt/tmp/theirs"), with: "not permitted")
    assertRefused(try shAs(65533, "rmdir mnt/tmp/dir"), with: "Operation not permitted")
    XCTAssertEqual(try shAs(65534, "mv mnt/tmp/mine mnt/tmp/moved && rmdir mnt/tmp/dir").status, 0)
    try sh("test -f root/tmp/moved && test ! -e root/tmp/mine && test ! -e root/tmp/dir")
    XCTAssertEqual(try sh("stat -c %u:%g root/tmp/moved"), "65534:65534\n")
  }

  /// A user's own tree, in a folder everyone may write: rename(2)'s errnos and link counts.
  func testRenameOfFoldersGivesLinuxsErrnosAndLinkCounts() throws {
    try sh("mkdir mnt/u && chmod 777 mnt/u")
    try asUser(65534, "cd mnt/u && mkdir -p a/sub b full/x empty && echo x > file")
    assertRefused(try shAs(65534, "mv -T mnt/u/a mnt/u/full"), with: "Directory not empty")
    assertRefused(try shAs(65534, rename("mnt/u/a", "mnt/u/a/sub/a")), with: "Invalid argument")
    assertRefused(try shAs(65534, rename("mnt/u/missing", "mnt/u/f")), with: "No such file")
    assertRefused(try shAs(65534, rename("mnt/u/b", "mnt/u/file")), with: "Not a directory")
    assertRefused(try shAs(65534, rename("mnt/u/file", "mnt/u/b")), with: "Is a directory")
    XCTAssertEqual(try sh("stat -c %h mnt/u/a mnt/u/b"), "3\n2\n")
    try asUser(65534, "mv mnt/u/a/sub mnt/u/b/sub")
    XCTAssertEqual(try sh("stat -c %h mnt/u/a mnt/u/b"), "2\n3\n")
    try asUser(65534, "mv -T mnt/u/a mnt/u/empty")
    try sh("test ! -e root/u/a && test -d root/u/empty && test -d root/u/b/sub")
    XCTAssertEqual(try sh("stat -c %u root/u/b/sub root/u/empty"), "65534\n65534\n")
  }

  /// rename(2) itself: `mv` checks some cases on its own before calling it.
  func rename(_ source: String, _ destination: String) -> String {
    "python3 -c \"import os, sys; os.rename(sys.argv[1], sys.argv[2])\" \(source) \(destination)"
  }

  func testOnlyTheOwnerSetsExplicitTimesAndAnyWriterTouchesNow() throws {
    try sh("mkdir mnt/u && chmod 777 mnt/u")
    try asUser(65534, "echo x > mnt/u/f && chmod 666 mnt/u/f && touch -d 2001-01-01 mnt/u/f")
    XCTAssertEqual(try sh("stat -c %Y root/u/f"), "978307200\n")
    try asUser(65533, "touch mnt/u/f")
    XCTAssertNotEqual(try sh("stat -c %Y mnt/u/f"), "978307200\n")
    assertRefused(try shAs(65533, "touch -d 2001-01-01 mnt/u/f"), with: "not permitted")
    assertRefused(try shAs(65533, "chmod 600 mnt/u/f"), with: "not permitted")
  }

  func testCtimeMovesOnChangesAndStaysOnFailures() throws {
    try sh("echo x > mnt/f && ln mnt/f mnt/g")
    var ctime = try sh("stat -c %Z.%z mnt/f")
    for change in ["chmod 600 mnt/f", "chown 12:34 mnt/f", "truncate -s 1 mnt/f", "rm mnt/g"] {
      try sh("sleep 1.1; \(change)")
      let now = try sh("stat -c %Z.%z mnt/f")
      XCTAssertNotEqual(now, ctime, "ctime after `\(change)`")
      ctime = now
    }
    try sh("sleep 1.1")
    assertRefused(try shAs(65534, "chmod 644 mnt/f"), with: "not permitted")
    XCTAssertEqual(try sh("stat -c %Z.%z mnt/f"), ctime, "ctime after a refused chmod")
  }

  func testDeviceNodesAndFifosAreMadeForReal() throws {
    try sh("mknod mnt/null c 1 3 && mknod mnt/loop b 7 0 && mkfifo mnt/pipe")
    XCTAssertEqual(
      try sh("stat -c '%F %t:%T' mnt/null mnt/loop mnt/pipe"),
      "character special file 1:3\nblock special file 7:0\nfifo 0:0\n")
    XCTAssertEqual(
      try sh("stat -c '%F %t:%T' root/null root/loop root/pipe"),
      "character special file 1:3\nblock special file 7:0\nfifo 0:0\n")
  }

  func testPathsUpToLinuxsLimit() throws {
    // 15 folders and a file, names of 255 bytes: 4,095 bytes relative to the mount.
    let component = String(repeating: "d", count: 255)
    var path = "mnt"
    for _ in 0..<15 { path += "/" + component }
    try sh("mkdir -p \(path)")
    let relative = path.dropFirst(4)
    let last = String(repeating: "f", count: 4095 - relative.utf8.count - 1)
    try sh("cd mnt && echo x > \(relative)/\(last) && cat \(relative)/\(last)")
    try sh("cd root && test -f \(relative)/\(last)")
    assertRefused(
      try shStatus("cd mnt && mkdir \(relative)/\(String(repeating: "n", count: 256))"),
      with: "File name too long")
  }
}

/// The same rules against stock envd: its processes do what its file routes cannot.
final class StockPosixTests: PosixTests {
  override var agentArguments: [String] { ["--envd-compat"] }

  override func testCtimeMovesOnChangesAndStaysOnFailures() throws {
    throw XCTSkip("envd's Stat has no ctime: shown as the mtime (README, what still differs)")
  }

  override func testRenameOfFoldersGivesLinuxsErrnosAndLinkCounts() throws {
    throw XCTSkip("envd's Stat has no link count: folders show 2 (README, what still differs)")
  }

  func testRenameOfFoldersGivesLinuxsErrnos() throws {
    try sh("mkdir mnt/u && chmod 777 mnt/u")
    try asUser(65534, "cd mnt/u && mkdir -p a/sub full/x empty && echo x > file")
    assertRefused(try shAs(65534, "mv -T mnt/u/a mnt/u/full"), with: "Directory not empty")
    assertRefused(try shAs(65534, rename("mnt/u/a", "mnt/u/a/sub/a")), with: "Invalid argument")
    assertRefused(try shAs(65534, rename("mnt/u/a", "mnt/u/file")), with: "Not a directory")
    assertRefused(try shAs(65534, rename("mnt/u/file", "mnt/u/a")), with: "Is a directory")
    try asUser(65534, "mv -T mnt/u/a mnt/u/empty")
    try sh("test ! -e root/u/a && test -d root/u/empty/sub")
    XCTAssertEqual(try sh("stat -c %u root/u/empty/sub"), "65534\n")
  }

}
