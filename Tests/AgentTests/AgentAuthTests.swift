import Foundation
import TestSupport
import XCTest

/// X-Access-Token (constant-time, envd's 401 bodies), Basic users and ?username=.
final class AgentAuthTests: AgentTestCase {
  override var agentEnvironment: [String: String]? { ["SANDBOX_AGENT_TOKEN": "s3cret-token"] }
  let good = "X-Access-Token: s3cret-token"

  func testRPCWithoutTokenIsEnvd401EvenOnConnectPaths() throws {
    let reply = try client.rpc("Stat", #"{"path":"/"}"#)
    XCTAssertEqual(reply.status, 401)
    XCTAssertEqual(reply.json["code"] as? Int, 401)
    XCTAssertEqual(
      reply.json["message"] as? String,
      "unauthorized access, please provide a valid access token or method signing if supported")
  }

  func testWrongTokenIsRefusedEverywhereButHealth() throws {
    let wrong = "X-Access-Token: s3cret-tokeN"
    XCTAssertEqual(try client.rpc("Stat", #"{"path":"/"}"#, headers: [wrong]).status, 401)
    XCTAssertEqual(try client.request("/metrics", headers: [wrong]).status, 401)
    XCTAssertEqual(try client.request("/nope", headers: [wrong]).status, 401)
    XCTAssertEqual(try client.request("/health").status, 204)
    try put("f.txt", Data("x".utf8))
    let download = try client.download("/f.txt", headers: [wrong])
    XCTAssertEqual(download.status, 401)
    XCTAssertEqual(
      download.json["message"] as? String, "access token present in header but does not match")
    let missing = try client.download("/f.txt")
    XCTAssertEqual(missing.status, 401)
    XCTAssertEqual(missing.json["message"] as? String, "missing signature query parameter")
    XCTAssertEqual(try client.upload("/g.txt", Data("y".utf8), headers: [wrong]).status, 401)
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("g.txt")))
  }

  func testGoodTokenWorks() throws {
    try put("f.txt", Data("hello".utf8))
    XCTAssertEqual(try client.download("/f.txt", headers: [good]).text, "hello")
    XCTAssertEqual(try client.rpc("Stat", #"{"path":"/f.txt"}"#, headers: [good]).status, 200)
    XCTAssertEqual(try client.request("/metrics", headers: [good]).status, 200)
    XCTAssertNil(try client.request("/envs", headers: [good]).json["SANDBOX_AGENT_TOKEN"])
  }

  func testTokenNeverReachesTheLog() throws {
    _ = try client.rpc("Stat", #"{"path":"/"}"#, headers: ["X-Access-Token: wrong"])
    _ = try client.rpc("Stat", #"{"path":"/"}"#, headers: [good])
    XCTAssertFalse(agent.child.standardError.contains("s3cret-token"))
  }

  func testUnknownBasicUserIsConnectUnauthenticated() throws {
    let basic = "Authorization: Basic " + Data("no-such-user-xyz:".utf8).base64EncodedString()
    let reply = try client.rpc("Stat", #"{"path":"/"}"#, headers: [good, basic])
    XCTAssertEqual(reply.status, 401)
    XCTAssertEqual(reply.json["code"] as? String, "unauthenticated")
    XCTAssertEqual(reply.json["message"] as? String, "invalid username: 'no-such-user-xyz'")
  }

  func testKnownBasicUserResolvesTildeToHome() throws {
    let basic = "Authorization: Basic " + Data("root:".utf8).base64EncodedString()
    try FileManager.default.createDirectory(
      atPath: hostPath("root/sub"), withIntermediateDirectories: true)
    let reply = try client.rpc("Stat", #"{"path":"~/sub"}"#, headers: [good, basic])
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual((reply.json["entry"] as? [String: Any])?["path"] as? String, "/root/sub")
    let relative = try client.rpc("Stat", #"{"path":"sub"}"#, headers: [good, basic])
    XCTAssertEqual((relative.json["entry"] as? [String: Any])?["path"] as? String, "/root/sub")
  }

  func testUnknownUsernameOnFilesIs401() throws {
    try put("f.txt", Data("x".utf8))
    let reply = try client.download("/f.txt", headers: [good], query: "&username=no-such-user-xyz")
    XCTAssertEqual(reply.status, 401)
    XCTAssertEqual(
      reply.json["message"] as? String,
      "error looking up user 'no-such-user-xyz': user: unknown user no-such-user-xyz")
  }

  func testOtherUsersHomeIsBadPath() throws {
    let reply = try client.download("~nobody/x", headers: [good])
    XCTAssertEqual(reply.status, 400)
    let rpc = try client.rpc("Stat", #"{"path":"~nobody/x"}"#, headers: [good])
    XCTAssertEqual(rpc.status, 400)
    XCTAssertEqual(rpc.json["code"] as? String, "invalid_argument")
  }
}

/// Startup refusals: these never get as far as listening.
final class AgentStartupTests: XCTestCase {
  func testNonLoopbackWithoutTokenIsRefused() throws {
    let result = try runCommand(
      [BuiltProducts.executable("sandbox-agent"), "--listen", "0.0.0.0:0", "--root", "/tmp"],
      environment: ["SANDBOX_AGENT_TOKEN": ""], timeout: 30)
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("refusing to listen on non-loopback address"), result.error)
    XCTAssertEqual(result.error.split(separator: "\n").count, 1)
  }

  func testNonLoopbackWithInsecureStarts() throws {
    let folder = try TemporaryDirectory()
    defer { folder.remove() }
    let agent = try RunningAgent(
      root: folder.path, arguments: ["--listen", "0.0.0.0:0", "--insecure"])
    defer { agent.stop() }
    XCTAssertTrue(agent.url.hasPrefix("http://0.0.0.0:"))
  }

  func testBadLimitsAreOneLineAndNoListening() throws {
    let cases: [([String], String)] = [
      (["--request-head-timeout", "0"], "--request-head-timeout must be a positive number"),
      (["--request-head-timeout", "nan"], "--request-head-timeout must be a positive number"),
      (["--max-connections", "0"], "--max-connections must be at least 1"),
      (["--watchers-per-connection=-1"], "--watchers-per-connection must be at least 1"),
      (["--max-watchers", "0"], "--max-watchers must be at least 1"),
    ]
    try assertRefusedAtStart(cases)
  }

  /// Each case's arguments stop the agent before it listens, with one line naming the problem.
  private func assertRefusedAtStart(_ cases: [([String], String)]) throws {
    for (arguments, expected) in cases {
      let result = try runCommand(
        [BuiltProducts.executable("sandbox-agent"), "--listen", "127.0.0.1:0", "--root", "/tmp"]
          + arguments, timeout: 30)
      XCTAssertNotEqual(result.status, 0, "\(arguments)")
      XCTAssertTrue(result.error.contains(expected), "\(arguments): \(result.error)")
      XCTAssertEqual(result.error.split(separator: "\n").count, 1, result.error)
      XCTAssertFalse(result.output.contains("listening"), result.output)
    }
  }

  /// Certificate and key are read at start: each problem is one line and no listening.
  func testTLSFilesAreCheckedAtStart() throws {
    guard TestCertificates.isAvailable else { throw XCTSkip("openssl is needed") }
    let certificates = try TestCertificates()
    defer { certificates.remove() }
    let garbage = certificates.folder.path + "/garbage.pem"
    try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
    let otherKey = certificates.folder.path + "/ca-key.pem"
    let cases: [([String], String)] = [
      (["--tls-cert", certificates.serverCertificate], "--tls-cert and --tls-key go together"),
      (["--tls-cert", garbage, "--tls-key", certificates.serverKey], "TLS certificate"),
      (["--tls-cert", certificates.serverCertificate, "--tls-key", garbage], "TLS key"),
      (
        ["--tls-cert", certificates.serverCertificate, "--tls-key", otherKey],
        "does not match"
      ),
      (["--tls-cert", "/no/such.pem", "--tls-key", certificates.serverKey], "/no/such.pem"),
    ]
    try assertRefusedAtStart(cases)
    let agent = try RunningAgent(
      root: certificates.folder.path,
      arguments: [
        "--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey,
      ])
    defer { agent.stop() }
    XCTAssertTrue(agent.url.hasPrefix("https://127.0.0.1:"), agent.url)
    // curl trusts the test CA and reaches /health over TLS; plain HTTP to the port does not.
    let health = try runCommand([
      "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
      certificates.caCertificate, agent.url + "/health",
    ])
    XCTAssertEqual(health.output, "204", health.error)
    let plain = try runCommand([
      "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
      agent.url.replacingOccurrences(of: "https://", with: "http://") + "/health",
    ])
    XCTAssertNotEqual(plain.output, "204")
  }
}
