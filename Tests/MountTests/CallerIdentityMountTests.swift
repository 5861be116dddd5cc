import Foundation
import TestSupport
import XCTest

/// Changes made as the process that asked them (`-o idmap=none` with `allow_other` and
/// `default_permissions`, the agent running as root): owners of new entries, permission errors
/// and setgid folders as on Linux, in the mount and in the agent's folder.
class CallerIdentityMountTests: MountTestCase {
  override var mountArguments: [String] { ["-o", "allow_other,default_permissions,idmap=none"] }

  override func setUpWithError() throws {
    try super.setUpWithError()
    // Others reach `mnt` through the work folder.
    try sh("chmod 755 . mnt")
  }

  /// A folder everyone may write into.
  func makePublicFolder() throws {
    try sh("mkdir mnt/pub && chmod 777 mnt/pub")
  }

  func testNewEntriesBelongToTheirCaller() throws {
    try makePublicFolder()
    let made = try shAs(
      65534,
      """
      set -e
      echo x > mnt/pub/f && mkdir mnt/pub/d && ln -s f mnt/pub/l && mkfifo mnt/pub/p
      stat -c '%n %u %g' mnt/pub/f mnt/pub/d mnt/pub/l mnt/pub/p
      """)
    XCTAssertEqual(made.status, 0, made.error)
    let expected = ["f", "d", "l", "p"].map { "mnt/pub/\($0) 65534 65534\n" }.joined()
    // Right after the calls: what the mount answers before its changes reached the agent.
    XCTAssertEqual(made.output, expected)
    // The agent's folder, once they did (`sh` syncs the mount first).
    XCTAssertEqual(
      try sh("cd root && stat -c '%n %u %g' pub/f pub/d pub/l pub/p"),
      expected.replacingOccurrences(of: "mnt/", with: ""))
  }

  func testOnlyTheOwnerMayChmod() throws {
    try makePublicFolder()
    let owner = try shAs(65534, "echo x > mnt/pub/f && chmod 600 mnt/pub/f")
    XCTAssertEqual(owner.status, 0, "the owner's chmod: \(owner.error)")
    let other = try shAs(65533, "chmod 644 mnt/pub/f")
    XCTAssertNotEqual(other.status, 0)
    XCTAssertTrue(other.error.contains("Operation not permitted"), other.error)
    XCTAssertEqual(try sh("stat -c '%a %u' mnt/pub/f root/pub/f"), "600 65534\n600 65534\n")
  }

  func testSetgidFolderGivesItsGroup() throws {
    try sh("mkdir mnt/g && chown 0:4242 mnt/g && chmod 2777 mnt/g")
    let made = try shAs(
      65534, "touch mnt/g/f && mkdir mnt/g/sub && stat -c '%n %u %g %a' mnt/g/f mnt/g/sub")
    XCTAssertEqual(made.status, 0, made.error)
    let expected = "mnt/g/f 65534 4242 644\nmnt/g/sub 65534 4242 2755\n"
    XCTAssertEqual(made.output, expected)
    XCTAssertEqual(
      try sh("cd root && stat -c '%n %u %g %a' g/f g/sub"),
      expected.replacingOccurrences(of: "mnt/", with: ""))
  }

  /// ctime moves on chmod and on a truncate through an open file, and not on a refused chmod.
  func testChangeTimeMovesOnChangesOnly() throws {
    let result = try shStatus(
      """
      set -e
      cd mnt
      echo hello > f
      a=$(stat -c %z f); sleep 0.05
      chmod 600 f
      b=$(stat -c %z f); sleep 0.05
      test "$a" != "$b" || { echo "chmod left ctime $a"; exit 1; }
      truncate -s 2 f
      c=$(stat -c %z f); sleep 0.05
      test "$b" != "$c" || { echo "truncate left ctime $b"; exit 1; }
      if setpriv --reuid 65533 --regid 65533 --clear-groups chmod 777 f 2>/dev/null; then
        echo "a stranger's chmod worked"; exit 1
      fi
      d=$(stat -c %z f)
      test "$c" = "$d" || { echo "a refused chmod moved ctime from $c to $d"; exit 1; }
      """)
    XCTAssertEqual(result.status, 0, result.output + result.error)
  }
}

extension CallerIdentityMountTests {
  /// A write by someone other than the owner clears setuid and setgid: the kernel asks it with
  /// the writer's credentials, and the sandbox's user makes it.
  func testAWriteByAnotherUserClearsSetuid() throws {
    try makePublicFolder()
    try sh("echo x > mnt/pub/f && chmod 6777 mnt/pub/f")
    let wrote = try shAs(65534, "echo more >> mnt/pub/f && stat -c %a mnt/pub/f")
    XCTAssertEqual(wrote.status, 0, wrote.error)
    XCTAssertEqual(wrote.output, "777\n")
    XCTAssertEqual(try sh("stat -c %a root/pub/f"), "777\n")
  }

  /// fstat of a file still open after its only name is gone says nlink 0, as on Linux.
  func testAnOpenFileUnlinkedHasNoLinks() throws {
    let result = try shStatus(
      """
      cd mnt && echo x > f && python3 -c '
      import os
      fd = os.open("f", os.O_RDONLY)
      os.unlink("f")
      print(os.fstat(fd).st_nlink)'
      """)
    XCTAssertEqual(result.output, "0\n", result.error)
  }
}

/// The same without write-back: every change goes to the agent as it is made.
final class CallerIdentityWriteThroughMountTests: CallerIdentityMountTests {
  override var mountArguments: [String] { super.mountArguments + ["--write-back", "off"] }

  // Declared here too: test discovery lists a subclass by the tests it declares.
  override func testNewEntriesBelongToTheirCaller() throws {
    try super.testNewEntriesBelongToTheirCaller()
  }
}

extension MountTestCase {
  /// `script` as `uid` (gid the same), with `groups` as its only supplementary groups.
  func shAs(_ uid: Int, groups: [Int] = [], _ script: String) throws -> (
    status: Int32, output: String, error: String
  ) {
    let groupOption =
      groups.isEmpty
      ? "--clear-groups" : "--groups " + groups.map(String.init).joined(separator: ",")
    let quoted = "'" + script.replacingOccurrences(of: "'", with: "'\\''") + "'"
    return try shStatus(
      "umask 022; setpriv --reuid \(uid) --regid \(uid) \(groupOption) sh -c \(quoted)")
  }
}

/// A journal of changes by several callers, replayed by the next mount after a `kill -9`: each
/// change is still made as its caller.
final class CallerIdentityReplayTests: MountTestCase {
  // Long cache timeouts: while the agent is stopped, nothing may need it but the drain.
  override var mountArguments: [String] {
    [
      "-o", "allow_other,default_permissions,idmap=none", "--attr-timeout", "60",
      "--entry-timeout", "60", "--negative-timeout", "60",
    ]
  }
  override var syncsBeforeEachCommand: Bool { false }

  func testReplayMakesEachChangeAsItsCaller() throws {
    try sh("chmod 755 . mnt && mkdir mnt/pub && chmod 777 mnt/pub && sync mnt && ls mnt/pub")
    kill(agent.child.process.processIdentifier, SIGSTOP)
    var resumed = false
    defer { if !resumed { kill(agent.child.process.processIdentifier, SIGCONT) } }
    let made = try shAs(65534, "echo x > mnt/pub/f && mkdir mnt/pub/d && touch mnt/pub/d/g")
    XCTAssertEqual(made.status, 0, made.error)
    try sh("echo y > mnt/pub/r")
    kill(mount.child.process.processIdentifier, SIGKILL)
    _ = mount.child.waitForExit(timeout: 10)
    _ = try runCommand(["fusermount3", "-uz", mountpoint], timeout: 20)
    kill(agent.child.process.processIdentifier, SIGCONT)
    resumed = true
    XCTAssertNotEqual(try shStatus("test -e root/pub/f").status, 0)

    mount = nil
    mount = try RunningMount(url: agent.url, mountpoint: mountpoint, arguments: mountArguments)
    XCTAssertTrue(mount.child.standardError.contains("replaying"), mount.child.standardError)
    try sh("sync mnt")
    XCTAssertEqual(
      try sh("cd root/pub && stat -c '%n %u %g' f d d/g r"),
      "f 65534 65534\nd 65534 65534\nd/g 65534 65534\nr 0 0\n")
  }
}
