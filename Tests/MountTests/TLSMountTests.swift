import Foundation
import TestSupport
import XCTest

/// The agent over HTTPS (`--tls-cert`, `--tls-key`) with a certificate from a CA made for the
/// test, mounted with `--ca-file`: each protocol through a real mount.
class TLSMountTestCase: MountTestCase {
  nonisolated(unsafe) static var certificates: TestCertificates?
  var certificates: TestCertificates { Self.certificates! }

  override class func setUp() {
    super.setUp()
    certificates = try? TestCertificates()
  }

  override class func tearDown() {
    certificates?.remove()
    certificates = nil
    super.tearDown()
  }

  override func setUpWithError() throws {
    guard Self.certificates != nil else { throw XCTSkip("openssl is needed to make a test CA") }
    try super.setUpWithError()
  }

  var tlsArguments: [String] {
    ["--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey]
  }

  /// Another mountpoint for mounts a test expects to fail.
  func otherMountpoint() throws -> String {
    let other = scratch + "/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    return other
  }

  /// Files and folders made, renamed, changed and removed on each side show on the other.
  func checkChangesCrossTheMount() throws {
    XCTAssertTrue(agent.url.hasPrefix("https://"), agent.url)
    try "from the root\n".write(toFile: root + "/remote.txt", atomically: true, encoding: .utf8)
    XCTAssertEqual(try sh("cat mnt/remote.txt"), "from the root\n")
    try sh("mkdir -p mnt/a/b && echo hello > mnt/a/b/new.txt && chmod 600 mnt/a/b/new.txt")
    try sh("mv mnt/a/b/new.txt mnt/a/moved.txt && rmdir mnt/a/b")
    try sh(
      "head -c 3000000 /dev/urandom > scratch/big && cp scratch/big mnt/big && cmp scratch/big mnt/big"
    )
    try sh("sync mnt")
    XCTAssertEqual(
      try String(contentsOfFile: root + "/a/moved.txt", encoding: .utf8), "hello\n")
    try sh("cmp scratch/big root/big && test ! -e root/a/b")
    try assertMountMatchesRoot()
  }
}

/// envd's protocol over HTTPS, with a token.
final class TLSMountTests: TLSMountTestCase {
  override var agentArguments: [String] { tlsArguments }
  override var agentEnvironment: [String: String]? { ["SANDBOX_AGENT_TOKEN": "tls-test-token"] }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    let tokenFile = workDirectory.path + "/token"
    try "tls-test-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    return (agentURL, ["--token-file", tokenFile, "--ca-file", certificates.caCertificate])
  }

  func testChangesCrossTheMount() throws {
    try checkChangesCrossTheMount()
  }

  /// Without `--ca-file` the system's CAs do not know the test CA; another CA does not either;
  /// plain `http://` to the TLS port gets no answer it understands. One line each, no mount.
  func testACertificateNoTrustedCASignedIsRefused() throws {
    let other = try otherMountpoint()
    let tokenFile = workDirectory.path + "/token"
    for extra in [[], ["--ca-file", certificates.otherCACertificate]] {
      let result = try runCommand(
        [
          BuiltProducts.executable("sandbox-mount"), agent.url, other, "-f", "--token-file",
          tokenFile, "--connect-timeout", "5",
        ] + extra, timeout: 60)
      XCTAssertNotEqual(result.status, 0)
      XCTAssertEqual(result.error.split(separator: "\n").count, 1, result.error)
      XCTAssertTrue(result.error.contains("certificate"), result.error)
      XCTAssertFalse(RunningMount.isMounted(other))
    }
    let plain = agent.url.replacingOccurrences(of: "https://", with: "http://")
    let result = try runCommand(
      [
        BuiltProducts.executable("sandbox-mount"), plain, other, "-f", "--token-file", tokenFile,
        "--connect-timeout", "5", "--io-timeout", "5",
      ], timeout: 60)
    XCTAssertNotEqual(result.status, 0, result.error)
    XCTAssertFalse(RunningMount.isMounted(other))
  }
}

/// LangSmith's protocol over HTTPS by host name: files over https, commands over the WebSocket
/// as wss (NIOSSL, trusting --ca-file).
class LangSmithTLSMountTests: TLSMountTestCase {
  override var agentArguments: [String] {
    LangSmithAgent.arguments + tlsArguments + ["--log-level", "debug"]
  }
  override var agentEnvironment: [String: String]? { LangSmithAgent.environment }

  /// The agent's URL as given to the mount.
  func endpoint(_ agentURL: String) -> String {
    agentURL.replacingOccurrences(of: "127.0.0.1", with: "localhost")
  }
  /// What the agent logs for the commands' route.
  var commandRoute: String { "Websocket upgrade" }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    let target = try LangSmithAgent.mountTarget(
      agentURL: endpoint(agentURL), folder: workDirectory.path)
    return (target.url, target.arguments + ["--ca-file", certificates.caCertificate])
  }

  func testChangesCrossTheMount() throws {
    try checkChangesCrossTheMount()
    // mkdir, chmod and mv are commands: they went over wss (or SSE), on the TLS port.
    Thread.sleep(forTimeInterval: 0.2)
    XCTAssertTrue(agent.child.standardError.contains(commandRoute), agent.child.standardError)
  }
}

/// By address: NIO's WebSocket client cannot name an address for TLS, so commands go over SSE.
final class LangSmithTLSAddressMountTests: LangSmithTLSMountTests {
  override func endpoint(_ agentURL: String) -> String { agentURL }
  override var commandRoute: String { "/execute/stream/start" }

  override func testChangesCrossTheMount() throws {
    try super.testChangesCrossTheMount()
  }
}

/// Vercel's protocol over HTTPS.
final class VercelTLSMountTests: TLSMountTestCase {
  override var agentArguments: [String] { VercelAgent.arguments + tlsArguments }
  override var agentEnvironment: [String: String]? { VercelAgent.environment }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    let target = try VercelAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
    return (target.url, target.arguments + ["--ca-file", certificates.caCertificate])
  }

  func testChangesCrossTheMount() throws {
    try checkChangesCrossTheMount()
  }
}

/// CoreWeave's gRPC over TLS (HTTP/2 with ALPN instead of h2c).
final class CoreWeaveTLSMountTests: TLSMountTestCase {
  override var agentArguments: [String] { CoreWeaveAgent.arguments + tlsArguments }
  override var agentEnvironment: [String: String]? { CoreWeaveAgent.environment }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    let target = try CoreWeaveAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
    return (target.url, target.arguments + ["--ca-file", certificates.caCertificate])
  }

  func testChangesCrossTheMount() throws {
    try checkChangesCrossTheMount()
  }
}
