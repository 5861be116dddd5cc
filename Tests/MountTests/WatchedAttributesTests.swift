import Foundation
import TestSupport
import XCTest

/// In a folder the sandbox watches for us, the daemon keeps attributes as long as the kernel may
/// (the watch's timeout), since others' changes there drop them: a stat the kernel has to ask
/// for again (after a rename, a write) needs no round trip. A no-op rsync at 20 ms RTT stat'ed
/// every file again: 871 round trips, 19 s.
final class WatchedAttributesTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  override var mountArguments: [String] { ["--write-back", "off"] }

  func testAStatTheKernelAsksForAgainIsAnsweredLocallyInAWatchedFolder() throws {
    try sh("mkdir root/d && for i in $(seq 1 20); do echo $i > root/d/f$i; done")
    try sh("ls -l mnt/d > /dev/null")
    Thread.sleep(forTimeInterval: 0.5)  // the watch of d is armed
    // A rename makes the kernel drop the file's attributes; ours are past the 1 s timeout.
    try sh("for i in $(seq 1 20); do mv mnt/d/f$i mnt/d/g$i; done")
    Thread.sleep(forTimeInterval: 1.5)
    let before = loggedRequests("Extension/Stat")
    // lstat(2) asks for every field, ctime too: what rsync's no-op does per file.
    try sh("python3 -c 'import os; [os.lstat(\"mnt/d/g%d\" % i) for i in range(1, 21)]'")
    // The old rule stat'ed all 20; a late echo of our own rename may still cost one or two.
    XCTAssertLessThanOrEqual(loggedRequests("Extension/Stat") - before, 2)
    // Others' changes still show: the watch drops what it reports.
    try sh("echo longer content > root/d/g1")
    Thread.sleep(forTimeInterval: 0.5)
    XCTAssertEqual(try sh("stat -c %s mnt/d/g1"), "15\n")
  }
}
