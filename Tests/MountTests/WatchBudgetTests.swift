import Foundation
import TestSupport
import XCTest

/// A walk through more folders than are watched starts few watches: after a burst of the limit,
/// at most 10 a second. Before, `find` through 150 folders started and stopped one per folder.
final class WatchBudgetTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  // Long timeouts: what others change shows only through a watch.
  override var mountArguments: [String] { ["--attr-timeout", "30", "--entry-timeout", "30"] }

  func testAWalkThroughManyFoldersStartsFewWatches() throws {
    try sh(
      "mkdir root/w && for i in $(seq 1 150); do mkdir root/w/d$i && echo $i > root/w/d$i/f; done")
    let before = loggedRequests("Filesystem/WatchDir")
    let started = Date()
    try sh("find mnt/w -type f | wc -l")
    let seconds = Date().timeIntervalSince(started)
    // The burst (32, the default limit), the refill over the walk, and the parents.
    XCTAssertLessThanOrEqual(
      loggedRequests("Filesystem/WatchDir") - before, 32 + Int(10 * seconds) + 3)
    // The budget refills: a folder used after the walk is watched, and reports changes at once.
    Thread.sleep(forTimeInterval: 0.5)
    try sh("ls mnt/w > /dev/null")
    Thread.sleep(forTimeInterval: 0.5)
    try sh("echo changed > root/w/f-new")
    Thread.sleep(forTimeInterval: 0.5)
    XCTAssertEqual(try sh("cat mnt/w/f-new"), "changed\n")
  }
}
