import Foundation
import TestSupport
import XCTest

final class LargeFileTests: MountTestCase {
  func testLargeFileRoundTripByChecksum() throws {
    try sh("head -c 256M /dev/urandom > scratch/big.bin")
    let expected = try sh("sha256sum < scratch/big.bin")
    try sh("cp scratch/big.bin mnt/big.bin")
    XCTAssertEqual(try sh("sha256sum < root/big.bin"), expected)
    try sh("cp mnt/big.bin scratch/back.bin")
    XCTAssertEqual(try sh("sha256sum < scratch/back.bin"), expected)
  }

  func testParallelReaders() throws {
    try sh("head -c 32M /dev/urandom > root/shared.bin")
    let expected = try sh("sha256sum < root/shared.bin")
    let sums = try sh(
      "for i in 1 2 3 4 5 6 7 8; do sha256sum < mnt/shared.bin > scratch/sum.$i & done; wait; cat scratch/sum.*"
    )
    XCTAssertEqual(sums, String(repeating: expected, count: 8))
  }
}
