import Foundation
import TestSupport
import XCTest

/// A folder made through a write-back mount is watched once the sandbox has it. Before, every
/// lookup there while its mkdir was still journaled asked the agent for a watch, which it
/// refused (no such folder), and the next lookup asked again: an rsync of 1,100 folders made
/// 2,134 watch requests.
final class WatchAfterDrainTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  // Long timeouts: what others change shows only through the watch.
  override var mountArguments: [String] { ["--attr-timeout", "30", "--entry-timeout", "30"] }

  func testAFolderMadeHereIsWatchedOnceTheSandboxHasIt() throws {
    let before = loggedRequests("Filesystem/WatchDir")
    // Lookups in each new folder, spread out, while its mkdir is still journaled: files made
    // meanwhile keep the drain gathering, as an rsync does.
    try sh(
      """
      python3 -c '
      import os, time
      os.mkdir("mnt/t")
      for d in range(20):
          os.mkdir("mnt/t/d%d" % d)
      for n in range(200):
          open("mnt/t/f%d" % n, "w").close()
          try: os.lstat("mnt/t/d%d/missing%d" % (n % 20, n))
          except FileNotFoundError: pass
          time.sleep(0.001)
      '
      """)
    try sh("sync mnt")
    Thread.sleep(forTimeInterval: 0.5)  // the watches start once the folders drained
    // One watch per folder (and the parent); the old code asked for one per lookup.
    XCTAssertLessThanOrEqual(loggedRequests("Filesystem/WatchDir") - before, 22)
    // And the watch works: a file made by someone else shows at once, despite 30 s timeouts.
    try sh("echo other > root/t/d3/theirs")
    Thread.sleep(forTimeInterval: 0.5)
    XCTAssertEqual(try sh("cat mnt/t/d3/theirs"), "other\n")
  }
}
