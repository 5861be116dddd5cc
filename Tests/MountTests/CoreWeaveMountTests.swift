import Foundation
import TestSupport
import XCTest

/// `sandbox-mount cwsandbox://ID --api-url http://…` against `sandbox-agent --protocol
/// coreweave` (gRPC over h2c): file tools through the mount, compared with the agent's folder
/// (the sandbox's `/`).
final class CoreWeaveMountTests: MountTestCase {
  override var agentArguments: [String] { CoreWeaveAgent.arguments + ["--log-level", "debug"] }
  override var agentEnvironment: [String: String]? { CoreWeaveAgent.environment }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try CoreWeaveAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testFileToolsMatchTheBackingFolder() throws {
    try checkFileToolsMatchTheBackingFolder()
  }

  func testSmallChangesToABigFileMoveOnlyTheirBytes() throws {
    try checkSmallChangesToABigFileMoveOnlyTheirBytes(wholeFileRoutes: ["WriteFile", "ReadFile"])
  }

  /// A file over the agent's 32 MiB cap goes both ways through `StreamExec` (stdin, `cat`), and
  /// a range of it through `dd`, not `ReadFile`/`WriteFile`.
  func testFilesOverTheCapStreamThroughTheMount() throws {
    try sh("head -c 40000000 /dev/urandom > scratch/huge && cp scratch/huge mnt/huge")
    try sh("cmp scratch/huge root/huge")
    let unaryBefore = agentRequests(to: "ReadFile")
    try sh(
      "dd if=mnt/huge of=scratch/part bs=4096 skip=7000 count=3 status=none && dd if=scratch/huge bs=4096 skip=7000 count=3 status=none | cmp - scratch/part"
    )
    try sh("cmp mnt/huge scratch/huge")
    XCTAssertEqual(agentRequests(to: "ReadFile"), unaryBefore)
  }

  func testAWrongKeyIsRefusedAtMount() throws {
    let badKey = workDirectory.path + "/bad-key"
    try "not-the-key".write(toFile: badKey, atomically: true, encoding: .utf8)
    let other = workDirectory.path + "/scratch/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let result = try runCommand(
      [
        BuiltProducts.executable("sandbox-mount"), "cwsandbox://\(CoreWeaveAgent.sandboxID)",
        other, "-f", "--api-url", agent.url, "--token-file", badKey,
      ], timeout: 30)
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("refused the API key"), result.error)
    XCTAssertFalse(RunningMount.isMounted(other))
  }

  /// A bad ID, an unknown sandbox, a base URL with a path, or another scheme's option: one
  /// line, nothing mounted.
  func testBadInvocationsStopWithOneLine() throws {
    let other = workDirectory.path + "/scratch/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let mount = BuiltProducts.executable("sandbox-mount")
    let api = ["--api-url", agent.url]
    let key = ["CWSANDBOX_API_KEY": CoreWeaveAgent.apiKey]
    let cases: [([String], [String: String], String)] = [
      (["cwsandbox://bad/id", other, "-f"] + api, key, "expected cwsandbox://SANDBOX_ID"),
      (["cwsandbox://other-id", other, "-f"] + api, key, "no sandbox 'other-id'"),
      (
        ["cwsandbox://\(CoreWeaveAgent.sandboxID)", other, "-f", "--api-url", agent.url + "/v1"],
        key, "invalid CoreWeave base URL"
      ),
      (
        ["cwsandbox://\(CoreWeaveAgent.sandboxID)", other, "-f", "--team", "t"] + api, key,
        "not for cwsandbox://"
      ),
    ]
    for (arguments, environment, expected) in cases {
      let result = try runCommand([mount] + arguments, environment: environment, timeout: 30)
      XCTAssertNotEqual(result.status, 0, "\(arguments)")
      XCTAssertTrue(result.error.contains(expected), "\(arguments): \(result.error)")
      XCTAssertEqual(
        result.error.split(separator: "\n").count, 1, "\(arguments): \(result.error)")
      XCTAssertFalse(RunningMount.isMounted(other))
    }
  }

  /// `CWSANDBOX_BASE_URL` and `CWSANDBOX_API_KEY` alone find the sandbox, as the SDK's do.
  func testTheEnvironmentAloneFindsTheSandbox() throws {
    try checkTheEnvironmentAloneMounts(
      "cwsandbox://\(CoreWeaveAgent.sandboxID)",
      environment: ["CWSANDBOX_BASE_URL": agent.url, "CWSANDBOX_API_KEY": CoreWeaveAgent.apiKey])
  }
}

/// The truncation check through `cwsandbox://`: `ReadFile` contents and large `StreamExec`
/// outputs cut short (the agent's fault switch) are EIO, never partial data, and nothing short
/// is kept in the cache.
final class CoreWeaveTruncationTests: TruncationTests {
  override var agentArguments: [String] { CoreWeaveAgent.arguments }
  override var agentEnvironment: [String: String]? {
    (super.agentEnvironment ?? [:]).merging(CoreWeaveAgent.environment) { $1 }
  }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try CoreWeaveAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  /// (Declared so Linux's XCTest lists the class; the inherited checks run with it.)
  func testAFileThatGrewIsNotAnErrorThroughCoreWeave() throws {
    try testAFileThatGrewIsNotAnError()
  }
}
