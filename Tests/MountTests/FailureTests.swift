import Foundation
import TestSupport
import XCTest

/// A sandbox that goes away under a mount gives EIO within the timeouts, never a hang.
final class UnreachableAgentTests: MountTestCase {
  override var mountArguments: [String] { ["--connect-timeout", "3", "--io-timeout", "3"] }

  func testKilledAgentGivesEIOQuickly() throws {
    try sh("echo content > root/file.txt")
    kill(agent.child.process.processIdentifier, SIGKILL)
    agent.child.waitForExit(timeout: 10)

    let started = Date()
    errno = 0
    var status = stat()
    XCTAssertEqual(stat(mountpoint + "/never-looked-up", &status), -1)
    XCTAssertEqual(errno, EIO)

    var failure: Int32 = 0
    let descriptor = open(mountpoint + "/file.txt", O_RDONLY)
    if descriptor < 0 {
      failure = errno
    } else {
      var buffer = [UInt8](repeating: 0, count: 64)
      if read(descriptor, &buffer, buffer.count) < 0 { failure = errno }
      close(descriptor)
    }
    XCTAssertEqual(failure, EIO)
    XCTAssertLessThan(Date().timeIntervalSince(started), 15)
  }
}

/// SIGTERM to a foreground mount unmounts it and exits 0.
final class SignalTests: MountTestCase {
  func testSIGTERMUnmountsAndExits() throws {
    try sh("ls mnt")
    kill(mount.child.process.processIdentifier, SIGTERM)
    XCTAssertEqual(mount.child.waitForExit(timeout: 15), 0)
    XCTAssertFalse(RunningMount.isMounted(mountpoint))
  }

  func testFusermountEndsTheDaemon() throws {
    try sh("fusermount3 -u mnt")
    XCTAssertEqual(mount.child.waitForExit(timeout: 15), 0)
  }
}
