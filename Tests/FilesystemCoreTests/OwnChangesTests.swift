import Backend
import XCTest

@testable import FilesystemCore

/// The watch's echo filter: its bookkeeping per change stays small after a burst.
final class OwnChangesTests: XCTestCase {
  /// A burst of changes still inside the window (a tar -x or rm -rf through the mount) must not
  /// make each later change scan all of it: the rename after an rm -rf of 10,000 files took
  /// 1.4-1.8 ms instead of 0.6 so.
  func testABurstInsideTheWindowIsNotScannedAtEveryLaterChange() {
    let changes = OwnChanges(window: .seconds(600))
    for index in 0..<10_000 { changes.end(["/untar/f\(index)"], .entries) }
    let before = changes.bookkeeping.prunePasses
    for index in 0..<1_000 { changes.end(["/calls/r\(index)"], .entries) }
    XCTAssertLessThanOrEqual(changes.bookkeeping.prunePasses - before, 1)
    XCTAssertTrue(changes.isOwn("/untar/f0"), "still inside the window")
  }

  /// Paths past the window are still forgotten: the map stays bounded.
  func testPathsPastTheWindowAreForgotten() {
    let changes = OwnChanges(window: .zero)
    for index in 0..<50_000 { changes.end(["/tree/f\(index)"], .entries) }
    XCTAssertLessThanOrEqual(changes.bookkeeping.ended, 2 * OwnChanges.pruneThreshold + 2)
    XCTAssertFalse(changes.isOwn("/tree/f0"))
  }
}
