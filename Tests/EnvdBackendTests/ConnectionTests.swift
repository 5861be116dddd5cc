import Backend
import Foundation
import TestSupport
import XCTest

@testable import EnvdBackend

/// verifyConnection's messages, auth, and what a dead or stalled server turns into.
final class ConnectionTests: XCTestCase {
  private var fixture: AgentFixture?

  override func tearDown() {
    fixture?.close()
  }

  private func start(environment: [String: String]? = nil) throws -> AgentFixture {
    let fixture = try AgentFixture(environment: environment)
    self.fixture = fixture
    return fixture
  }

  func testVerifyConnectionSucceedsAndChecksTheRoot() async throws {
    let fixture = try start()
    try fixture.write("/plain", [1])
    try await fixture.backend().verifyConnection()
    let missing = await assertRemoteError(ENOENT) {
      try await fixture.backend { $0.remoteRoot = "/nope" }.verifyConnection()
    }
    XCTAssertEqual(missing?.message, "the remote root '/nope' does not exist")
    let file = await assertRemoteError(ENOTDIR) {
      try await fixture.backend { $0.remoteRoot = "/plain" }.verifyConnection()
    }
    XCTAssertEqual(file?.message, "the remote root '/plain' is not a directory")
  }

  func testAccessToken() async throws {
    let fixture = try start(environment: ["SANDBOX_AGENT_TOKEN": "s3cret"])
    try fixture.write("/f", [1, 2, 3])
    try await fixture.backend { $0.accessToken = "s3cret" }.verifyConnection()

    let rejected = await assertRemoteError(EACCES) {
      _ = try await fixture.backend { $0.accessToken = "wrong" }
    }
    XCTAssertTrue(
      rejected?.message.hasPrefix("access token rejected") == true,
      "\(String(describing: rejected))")
    // A token the server stops accepting while mounted: every call fails with EACCES.
    var configuration = EnvdConfiguration(baseURL: fixture.agent.url)
    configuration.accessToken = "wrong"
    let wrong = EnvdStockBackend(connection: try EnvdConnection(configuration: configuration))
    defer { wrong.shutdown() }
    await assertRemoteError(EACCES) { try await wrong.attributes(of: "/f") }
    await assertRemoteError(EACCES) {
      try await wrong.read("/f", offset: 0, length: 3, expectedSize: 3)
    }
    await assertRemoteError(EACCES) { try await wrong.upload("/g", from: nil) }

    let missing = await assertRemoteError(EACCES) { _ = try await fixture.backend() }
    XCTAssertTrue(
      missing?.message.hasPrefix("the server requires an access token") == true,
      "\(String(describing: missing))")
  }

  func testUnknownUser() async throws {
    let fixture = try start()
    let error = await assertRemoteError(EACCES) {
      try await fixture.backend { $0.user = "no-such-user-xyz" }.verifyConnection()
    }
    XCTAssertTrue(
      error?.message.hasPrefix("user 'no-such-user-xyz' rejected") == true,
      "\(String(describing: error))")
  }

  func testClosedPortFailsFastWithAClearMessage() async throws {
    let port = try closedPort()
    let seconds = await timed {
      let error = await assertRemoteError(EIO) {
        _ = try await EnvdBackend.connect(
          configuration: EnvdConfiguration(baseURL: "http://127.0.0.1:\(port)"))
      }
      XCTAssertEqual(
        error?.message, "cannot connect to http://127.0.0.1:\(port): connection refused")
    }
    XCTAssertLessThan(seconds, 2)
  }

  func testUnresolvableHost() async throws {
    let error = await assertRemoteError(EIO) {
      _ = try await EnvdBackend.connect(
        configuration: EnvdConfiguration(baseURL: "http://no-such-host.invalid:49983"))
    }
    XCTAssertTrue(
      error?.message.hasPrefix("cannot resolve the host") == true, "\(String(describing: error))")
  }

  func testBadConfiguration() {
    for url in ["ftp://host/", "not a url", "http://", "http://host:99999", "http://host/?a=b"] {
      XCTAssertThrowsError(try EnvdConnection(configuration: EnvdConfiguration(baseURL: url)), url)
      {
        error in
        XCTAssertEqual((error as? RemoteError)?.errno, EINVAL, "\(url): \(error)")
      }
    }
    var relative = EnvdConfiguration(baseURL: "http://127.0.0.1:1")
    relative.remoteRoot = "home/user"
    XCTAssertThrowsError(try EnvdConnection(configuration: relative))
  }

  func testStalledServerGivesEIOWithinTheLowSpeedTime() async throws {
    let fixture = try start()
    let bytes = try fixture.write("/f", randomBytes: 1000)
    let backend = try await fixture.backend {
      $0.lowSpeedTime = 2
      $0.requestTimeout = 3
    }
    _ = try await backend.attributes(of: "/f")  // a pooled connection now exists
    kill(fixture.pid, SIGSTOP)
    let statSeconds = await timed {
      await assertRemoteError(EIO) { try await backend.attributes(of: "/f") }
    }
    XCTAssertLessThan(statSeconds, 6)
    let readSeconds = await timed {
      await assertRemoteError(EIO) {
        try await backend.read("/f", offset: 0, length: 1000, expectedSize: UInt64(bytes.count))
      }
    }
    XCTAssertLessThan(readSeconds, 6)
    kill(fixture.pid, SIGCONT)
    // Calls fail at once until the health check (one a second) hears the server again.
    var again: [UInt8] = []
    for _ in 0..<30 where again.isEmpty {
      again =
        (try? await backend.read("/f", offset: 0, length: 1000, expectedSize: 1000)) ?? []
      if again.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
    }
    XCTAssertEqual(again, bytes)
  }

  func testAgentKilledMidOperationGivesEIOQuickly() async throws {
    let fixture = try start()
    _ = try fixture.write("/big", randomBytes: 4 << 20)
    let local = try TemporaryDirectory(prefix: "envd-killed")
    defer { local.remove() }
    let backend = try await fixture.backend()  // default 30 s low-speed time: the kill must be noticed sooner
    kill(fixture.pid, SIGSTOP)
    let download = Task {
      try await backend.download("/big", expectedSize: 4 << 20, to: local.path + "/big")
    }
    try await Task.sleep(for: .milliseconds(300))  // the request is now waiting on the agent
    let start = ContinuousClock.now
    kill(fixture.pid, SIGKILL)
    do {
      _ = try await download.value
      XCTFail("the download of a killed agent succeeded")
    } catch let error as RemoteError {
      XCTAssertEqual(error.errno, EIO, "\(error)")
    }
    XCTAssertLessThan(ContinuousClock.now - start, .seconds(3))
    await assertRemoteError(EIO) { try await backend.attributes(of: "/big") }
  }

  func testCancellationAbortsAWaitingRequest() async throws {
    let fixture = try start()
    let backend = try await fixture.backend()
    kill(fixture.pid, SIGSTOP)
    let stat = Task { try await backend.attributes(of: "/") }
    try await Task.sleep(for: .milliseconds(200))
    let seconds = await timed {
      stat.cancel()
      await assertRemoteError(EINTR) { try await stat.value }
    }
    XCTAssertLessThan(seconds, 1)
  }

  func testShutdownFailsLaterCalls() async throws {
    let fixture = try start()
    let backend = try await fixture.backend()
    _ = try await backend.attributes(of: "/")
    backend.shutdown()
    await assertRemoteError(EIO) { try await backend.attributes(of: "/") }
  }

  /// A loopback port nothing listens on.
  private func closedPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
      }
    }
    guard bound else { throw TestSupportError("bind failed") }
    return UInt16(bigEndian: address.sin_port)
  }
}
