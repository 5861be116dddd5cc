import XCTest
import TestSupport

final class EnvdBackendTestsPlaceholder: XCTestCase {
  func testBuilds() {}
}
