import Foundation
import TestSupport
import XCTest

/// `sandbox-mount vercel://NAME --api-url …` against `sandbox-agent --protocol vercel`: file
/// tools through the mount, compared with the agent's folder (the sandbox's `/`).
final class VercelMountTests: MountTestCase {
  override var agentArguments: [String] { VercelAgent.arguments + ["--log-level", "debug"] }
  override var agentEnvironment: [String: String]? { VercelAgent.environment }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try VercelAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testFileToolsMatchTheBackingFolder() throws {
    try checkFileToolsMatchTheBackingFolder()
  }

  func testSmallChangesToABigFileMoveOnlyTheirBytes() throws {
    try checkSmallChangesToABigFileMoveOnlyTheirBytes(wholeFileRoutes: ["fs/read ", "fs/write "])
  }

  func testAWrongTokenIsRefusedAtMount() throws {
    let badToken = workDirectory.path + "/bad-token"
    try "not-the-token".write(toFile: badToken, atomically: true, encoding: .utf8)
    let other = workDirectory.path + "/scratch/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let result = try runCommand(
      [
        BuiltProducts.executable("sandbox-mount"), "vercel://\(VercelAgent.sandboxName)", other,
        "-f", "--api-url", agent.url + "/api", "--token-file", badToken,
      ], timeout: 30)
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("refused the token"), result.error)
    XCTAssertFalse(RunningMount.isMounted(other))
  }

  /// A bad name, no token, or an option of another scheme: one line, nothing mounted.
  func testBadInvocationsStopWithOneLine() throws {
    let other = workDirectory.path + "/scratch/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let mount = BuiltProducts.executable("sandbox-mount")
    let api = ["--api-url", agent.url + "/api"]
    let cases: [([String], [String: String], String)] = [
      (
        ["vercel://bad/name", other, "-f"] + api, ["VERCEL_TOKEN": "t"],
        "expected vercel://SANDBOX_NAME"
      ),
      (
        ["vercel://ok", other, "-f"] + api, ["VERCEL_TOKEN": "", "VERCEL_OIDC_TOKEN": ""],
        "needs a token"
      ),
      (["vercel://ok", other, "-f", "--user", "root"] + api, ["VERCEL_TOKEN": "t"], "--user"),
      ([agent.url, other, "-f", "--sudo"], [:], "are for vercel://"),
    ]
    for (arguments, environment, expected) in cases {
      let result = try runCommand([mount] + arguments, environment: environment, timeout: 30)
      XCTAssertNotEqual(result.status, 0, "\(arguments)")
      XCTAssertTrue(result.error.contains(expected), "\(arguments): \(result.error)")
      XCTAssertFalse(RunningMount.isMounted(other))
    }
  }
}

/// The truncation check through `vercel://`: `fs/read` bodies cut short (the agent's fault
/// switch) are EIO, never partial data, and nothing short is kept in the whole-file copies.
final class VercelTruncationTests: TruncationTests {
  override var agentArguments: [String] { VercelAgent.arguments }
  override var agentEnvironment: [String: String]? {
    (super.agentEnvironment ?? [:]).merging(VercelAgent.environment) { $1 }
  }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try VercelAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  /// (Declared so Linux's XCTest lists the class; the inherited checks run with it.)
  func testAFileThatGrewIsNotAnErrorThroughVercel() throws {
    try testAFileThatGrewIsNotAnError()
  }
}
