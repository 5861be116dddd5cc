import Foundation
import TestSupport
import XCTest

/// What the kernel asks the daemon per call, read off libfuse's request log (`-d`).
final class KernelRequestTests: MountTestCase {
  override var mountArguments: [String] { ["-d"] }

  /// A reader's close has nothing to send, so the kernel is told to skip its flush: one round
  /// trip less per file for cat, grep and rsync's second open of each file it writes.
  func testOnlyAWritersCloseIsFlushed() throws {
    try sh("for i in 1 2 3 4 5; do echo $i > root/f$i; done")
    let opens = kernelRequests("OPEN")
    let flushes = kernelRequests("FLUSH")
    XCTAssertEqual(try sh("cat mnt/f1 mnt/f2 mnt/f3 mnt/f4 mnt/f5"), "1\n2\n3\n4\n5\n")
    XCTAssertEqual(kernelRequests("OPEN") - opens, 5, "the reads went through the daemon")
    XCTAssertEqual(kernelRequests("FLUSH") - flushes, 0)
    // A writer's close still sends its changes, and its errors reach close (the shell's
    // redirection closes two descriptors of the file, so two flushes).
    try sh("echo changed > mnt/f1")
    XCTAssertGreaterThan(kernelRequests("FLUSH") - flushes, 0)
    try sh("timeout 30 sync mnt")
    XCTAssertEqual(try String(contentsOfFile: root + "/f1", encoding: .utf8), "changed\n")
  }
}
