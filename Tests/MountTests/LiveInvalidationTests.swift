import Foundation
import TestSupport
import XCTest

/// Changes made inside the sandbox reach a mount that cached them through the sandbox's watch
/// (envd `WatchDir`). The timeouts are a minute long, so nothing but an invalidation explains
/// a change seen within 200 ms.
class LiveInvalidationTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  override var mountArguments: [String] {
    [
      "--attr-timeout", "60", "--entry-timeout", "60", "--negative-timeout", "60",
      "--log-level", "debug",
    ]
  }

  /// The mount's debug lines for invalidations so far ("watch: created /a").
  func invalidations() -> Int {
    Thread.sleep(forTimeInterval: 0.3)  // let the last events and log lines arrive
    return mount.child.standardError.components(separatedBy: "watch: ").count - 1
  }

  /// Waits until the watch of `directory` is armed (the mount logs its events from then on).
  func waitForWatch(of directory: String) {
    // The first lookup there starts the watch; arming it is one round trip.
    Thread.sleep(forTimeInterval: 0.5)
  }

  /// Runs `change` (Python, in the work folder), then polls `probe` until it prints `expected`,
  /// for at most `limit` seconds; returns the milliseconds it took, or nil.
  func millisecondsUntilSeen(
    change: String, probe: String, expected: String, limit: Double = 0.2
  ) throws -> Double? {
    let output = try sh(
      """
      python3 - <<'PY'
      import os, time
      def probe():
          try:
              return str(\(probe))
          except OSError as error:
              return "error %d" % error.errno
      \(change)
      start = time.monotonic()
      while True:
          got = probe()
          elapsed = time.monotonic() - start
          if got == \(expected.debugDescription):
              print("%.1f" % (elapsed * 1000))
              break
          if elapsed > \(limit):
              print("never: " + got)
              break
          time.sleep(0.002)
      PY
      """)
    let line = output.trimmingCharacters(in: .whitespacesAndNewlines)
    if let milliseconds = Double(line) { return milliseconds }
    XCTFail("not seen within \(Int(limit * 1000)) ms (\(line))")
    return nil
  }

  func testAFileChangedInTheSandboxIsSeenWithin200ms() throws {
    try sh("printf one > root/note.txt")
    XCTAssertEqual(try sh("cat mnt/note.txt; cat mnt/note.txt"), "oneone")
    waitForWatch(of: "/")
    let longer = try millisecondsUntilSeen(
      change: "open('root/note.txt', 'w').write('three, longer')",
      probe: "open('mnt/note.txt').read()", expected: "three, longer")
    // Same size, another content: only an invalidation drops the kernel's pages.
    let sameSize = try millisecondsUntilSeen(
      change: "open('root/note.txt', 'w').write('four, longer!')",
      probe: "open('mnt/note.txt').read()", expected: "four, longer!")
    print("seen after \(longer ?? -1) ms and \(sameSize ?? -1) ms")
    // And a mode changed there.
    _ = try millisecondsUntilSeen(
      change: "os.chmod('root/note.txt', 0o600)",
      probe: "oct(os.stat('mnt/note.txt').st_mode & 0o777)", expected: "0o600")
  }

  func testNamesCreatedAndRemovedInTheSandboxShowInACachedListing() throws {
    try sh("mkdir root/dir && touch root/dir/a root/dir/b")
    XCTAssertEqual(try sh("ls mnt/dir; ls mnt/dir"), "a\nb\na\nb\n")
    // A name looked up while missing: the kernel keeps that answer for a minute.
    XCTAssertNotEqual(try shStatus("stat mnt/dir/later").status, 0)
    waitForWatch(of: "/dir")
    _ = try millisecondsUntilSeen(
      change: "open('root/dir/c', 'w').write('c')",
      probe: "sorted(os.listdir('mnt/dir'))", expected: "['a', 'b', 'c']")
    _ = try millisecondsUntilSeen(
      change: "os.remove('root/dir/a')",
      probe: "sorted(os.listdir('mnt/dir'))", expected: "['b', 'c']")
    _ = try millisecondsUntilSeen(
      change: "open('root/dir/later', 'w').write('here')",
      probe: "open('mnt/dir/later').read()", expected: "here")
    _ = try millisecondsUntilSeen(
      change: "os.rename('root/dir/later', 'root/dir/moved')",
      probe: "(os.path.exists('mnt/dir/later'), open('mnt/dir/moved').read())",
      expected: "(False, 'here')")
  }

  func testRsyncThroughTheMountCausesNoInvalidationStorm() throws {
    try sh(
      "mkdir -p scratch/src/sub && for i in $(seq 1 150); do echo file $i > scratch/src/f$i; done && for i in $(seq 1 50); do echo sub $i > scratch/src/sub/s$i; done"
    )
    XCTAssertEqual(try sh("ls mnt | wc -l"), "0\n")
    waitForWatch(of: "/")
    let before = invalidations()
    try sh("rsync -a scratch/src/ mnt/copy/ && rsync -a --delete scratch/src/ mnt/copy/")
    try sh(
      "echo changed > scratch/src/f1 && rm scratch/src/f2 && rsync -a --delete scratch/src/ mnt/copy/"
    )
    try sh("diff -r scratch/src mnt/copy && diff -r scratch/src root/copy")
    let during = invalidations() - before
    print("invalidations during rsync of 200 files: \(during)")
    // Our own changes come back as events (hundreds of them); none may become an invalidation.
    XCTAssertLessThanOrEqual(during, 2, mount.child.standardError)
    let status = try sh("\(BuiltProducts.executable("sandbox-mount")) status mnt --json")
    let watch =
      (try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["watch"]
      as? [String: Any]
    let echoes = (watch?["ownEchoes"] as? Int) ?? 0
    print("own echoes skipped: \(echoes)")
    XCTAssertGreaterThan(echoes, 100, status)
  }

  func testABrokenWatchIsReestablished() throws {
    try sh("printf one > root/note.txt")
    XCTAssertEqual(try sh("cat mnt/note.txt"), "one")
    waitForWatch(of: "/")
    try sandbox.restartAgent(arguments: agentArguments)
    // The watch comes back by itself (backoff from 0.1 s to 5 s).
    let back = mount.child.waitFor(timeout: 15) {
      self.mount.child.standardError.contains("watch of / re-established")
    }
    XCTAssertTrue(back, mount.child.standardError)
    _ = try millisecondsUntilSeen(
      change: "open('root/note.txt', 'w').write('after the restart')",
      probe: "open('mnt/note.txt').read()", expected: "after the restart")
  }
}

/// The same against stock envd: its `WatchDir` is the same route.
final class StockLiveInvalidationTests: LiveInvalidationTests {
  override var agentArguments: [String] { ["--log-level", "debug", "--envd-compat"] }

  override func testAFileChangedInTheSandboxIsSeenWithin200ms() throws {
    try super.testAFileChangedInTheSandboxIsSeenWithin200ms()
  }
}
