import Backend
import HTTPTransport
import XCTest

@testable import EnvdBackend

/// The transfer engine keeps connections alive and shares them, within the per-host cap.
final class ConnectionReuseTests: XCTestCase {
  private var fixture: AgentFixture!

  override func setUpWithError() throws { fixture = try AgentFixture() }
  override func tearDown() { fixture?.close() }

  func testSequentialRequestsShareOneConnection() async throws {
    let backend = try await fixture.backend()
    var opened = 0
    for _ in 0..<50 {
      opened += try await backend.connection.client.get(route: "/health").newConnections
      opened += try await backend.connection.client.rpcResponse("Stat", PathRequest(path: "/"))
        .newConnections
    }
    // Connecting opened the one connection they all share.
    XCTAssertEqual(opened, 0)
  }

  func testParallelRequestsStayWithinTheHostCap() async throws {
    let backend = try await fixture.backend()
    _ = try fixture.write("/f", randomBytes: 64 << 10)
    let opened = try await withThrowingTaskGroup(of: Int.self) { group in
      for _ in 0..<(CurlMultiLoop.defaultMaxHostConnections * 3 / 2) {
        group.addTask {
          var request = HTTPRequest(method: .get, url: backend.connection.client.filesURL("/f"))
          request.sink = .memory(expected: 64 << 10, limit: 64 << 10)
          let response = try await backend.connection.client.files(request)
          XCTAssertEqual(response.body.count, 64 << 10)
          return response.newConnections
        }
      }
      return try await group.reduce(0, +)
    }
    XCTAssertGreaterThanOrEqual(opened, 1)
    XCTAssertLessThanOrEqual(opened, CurlMultiLoop.defaultMaxHostConnections)
    let afterwards = try await backend.connection.client.get(route: "/health").newConnections
    XCTAssertEqual(afterwards, 0)
  }
}
