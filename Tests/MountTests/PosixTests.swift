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

  func testRenameOfFoldersGivesLinuxsErrnosAndLinkCounts() throws {
    try sh("mkdir -p mnt/a/sub mnt/b mnt/full/x mnt/empty")
    assertRefused(try shStatus("mv -T mnt/a mnt/full"), with: "Directory not empty")
    assertRefused(try shStatus(rename("mnt/a", "mnt/a/sub/a")), with: "Invalid argument")
    assertRefused(try shStatus(rename("mnt/missing", "mnt/f")), with: "No such file")
    XCTAssertEqual(try sh("stat -c %h mnt/a mnt/b"), "3\n2\n")
    try sh("mv mnt/a/sub mnt/b/sub")
    XCTAssertEqual(try sh("stat -c %h mnt/a mnt/b"), "2\n3\n")
    try sh("mv -T mnt/a mnt/empty")
    try sh("test ! -e root/a && test -d root/empty && test -d root/b/sub")
    try sh("echo x > mnt/file")
    assertRefused(try shStatus(rename("mnt/b", "mnt/file")), with: "Not a directory")
    assertRefused(try shStatus(rename("mnt/file", "mnt/b")), with: "Is a directory")
  }

  /// rename(2) itself: `mv` checks some cases on its own before calling it.
  func rename(_ source: String, _ destination: String) -> String {
    "python3 -c \"import os; os.rename('\(source)', '\(destination)')\""
  }

  func testOnlyTheOwnerSetsExplicitTimesAndAnyWriterTouchesNow() throws {
    try sh("echo x > mnt/shared && chmod 666 mnt/shared && touch -d 2001-01-01 mnt/shared")
    XCTAssertEqual(try shAs(65534, "touch mnt/shared").status, 0)
    XCTAssertNotEqual(try sh("stat -c %Y mnt/shared"), "978307200\n")
    assertRefused(try shAs(65534, "touch -d 2001-01-01 mnt/shared"), with: "not permitted")
    assertRefused(try shAs(65534, "chmod 600 mnt/shared"), with: "not permitted")
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
    try sh("mkdir -p mnt/a/sub mnt/full/x mnt/empty && echo x > mnt/file")
    assertRefused(try shStatus("mv -T mnt/a mnt/full"), with: "Directory not empty")
    assertRefused(try shStatus(rename("mnt/a", "mnt/a/sub/a")), with: "Invalid argument")
    assertRefused(try shStatus(rename("mnt/a", "mnt/file")), with: "Not a directory")
    assertRefused(try shStatus(rename("mnt/file", "mnt/a")), with: "Is a directory")
    try sh("mv -T mnt/a mnt/empty && test ! -e root/a && test -d root/empty/sub")
  }
}
