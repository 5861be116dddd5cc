import XCTest
import TestSupport

final class MountTestsPlaceholder: XCTestCase {
  func testBuilds() {}
}
