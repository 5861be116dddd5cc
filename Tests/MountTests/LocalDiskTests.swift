import Foundation
import TestSupport
import XCTest

/// The local disk under `--cache-dir` (staging files, disk cache) fills up: writers get ENOSPC,
/// and the log says the local disk failed, not the sandbox.
final class LocalDiskTests: MountTestCase {
  private var disk: SmallDisk!
  override var mountArguments: [String] { ["--cache-dir", disk.path] }

  override func setUpWithError() throws {
    disk = try SmallDisk(size: "2m")
    do {
      try super.setUpWithError()
    } catch {
      disk.remove()
      throw error
    }
  }

  override func tearDown() {
    super.tearDown()
    disk?.remove()
    disk = nil
  }

  func testAFullStagingDiskIsENOSPCAndTheLogSaysItIsLocal() throws {
    let result = try shStatus("head -c 8388608 /dev/zero > mnt/big.bin")
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("No space left on device"), result.error)
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    let log = mount.child.standardError
    let line = log.split(separator: "\n").first { $0.contains("No space left on device") }
    XCTAssertNotNil(line, log)
    XCTAssertTrue(line?.contains("local disk: write of staging file") ?? false, log)
    XCTAssertTrue(line?.contains(disk.path) ?? false, log)
    XCTAssertTrue(line?.contains("error") ?? false, "logged at error level: \(log)")
  }
}
