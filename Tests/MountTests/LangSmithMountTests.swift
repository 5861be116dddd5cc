import Foundation
import TestSupport
import XCTest

/// `sandbox-mount langsmith://NAME --api-url …` against `sandbox-agent --protocol langsmith`:
/// file tools through the mount, compared with the agent's folder (the box's `/`).
final class LangSmithMountTests: MountTestCase {
  override var agentArguments: [String] { LangSmithAgent.arguments + ["--log-level", "debug"] }
  override var agentEnvironment: [String: String]? { LangSmithAgent.environment }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try LangSmithAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testFileToolsMatchTheBackingFolder() throws {
    try checkFileToolsMatchTheBackingFolder()
  }

  func testSmallChangesToABigFileMoveOnlyTheirBytes() throws {
    try checkSmallChangesToABigFileMoveOnlyTheirBytes(wholeFileRoutes: ["upload "])
  }

  func testAWrongKeyIsRefusedAtMount() throws {
    let badKey = workDirectory.path + "/bad-key"
    try "not-the-key".write(toFile: badKey, atomically: true, encoding: .utf8)
    let other = workDirectory.path + "/scratch/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let result = try runCommand(
      [
        BuiltProducts.executable("sandbox-mount"), "langsmith://\(LangSmithAgent.boxName)", other,
        "-f", "--api-url", agent.url, "--token-file", badKey,
      ], timeout: 30)
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("refused the API key"), result.error)
    XCTAssertFalse(RunningMount.isMounted(other))
  }

  /// A bad name, no key, or another scheme's option: one line, nothing mounted.
  func testBadInvocationsStopWithOneLine() throws {
    let other = workDirectory.path + "/scratch/other-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let mount = BuiltProducts.executable("sandbox-mount")
    let api = ["--api-url", agent.url]
    let noKey = ["LANGSMITH_API_KEY": "", "LANGCHAIN_API_KEY": ""]
    let cases: [([String], [String: String], String)] = [
      (
        ["langsmith://bad/name", other, "-f"] + api, ["LANGSMITH_API_KEY": "k"],
        "expected langsmith://BOX_NAME"
      ),
      (["langsmith://ok", other, "-f"] + api, noKey, "needs an API key"),
      (
        ["langsmith://ok", other, "-f", "--team", "t"] + api, ["LANGSMITH_API_KEY": "k"],
        "not for langsmith://"
      ),
    ]
    for (arguments, environment, expected) in cases {
      let result = try runCommand([mount] + arguments, environment: environment, timeout: 30)
      XCTAssertNotEqual(result.status, 0, "\(arguments)")
      XCTAssertTrue(result.error.contains(expected), "\(arguments): \(result.error)")
      XCTAssertFalse(RunningMount.isMounted(other))
    }
  }

  /// `LANGSMITH_ENDPOINT` and `LANGSMITH_API_KEY` alone find the box, as the SDK's do.
  func testTheEnvironmentAloneFindsTheBox() throws {
    try checkTheEnvironmentAloneMounts(
      "langsmith://any-box",
      environment: [
        "LANGSMITH_ENDPOINT": agent.url + "/api/v1", "LANGSMITH_API_KEY": LangSmithAgent.apiKey,
      ])
  }
}

/// The truncation check through `langsmith://`: ranged `/download` bodies cut short (the
/// agent's fault switch) are EIO, never partial data, and nothing short is kept in the cache.
final class LangSmithTruncationTests: TruncationTests {
  override var agentArguments: [String] { LangSmithAgent.arguments }
  override var agentEnvironment: [String: String]? {
    (super.agentEnvironment ?? [:]).merging(LangSmithAgent.environment) { $1 }
  }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try LangSmithAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  /// (Declared so Linux's XCTest lists the class; the inherited checks run with it.)
  func testAFileThatGrewIsNotAnErrorThroughLangSmith() throws {
    try testAFileThatGrewIsNotAnError()
  }
}
