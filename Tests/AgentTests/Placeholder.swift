import XCTest
import TestSupport

final class AgentTestsPlaceholder: XCTestCase {
  func testBuilds() {}
}
