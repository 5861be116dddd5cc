import Foundation
import TestSupport
import XCTest

/// `sandbox-mount langsmith://NAME --api-url …` against `sandbox-agent --protocol langsmith`:
/// file tools through the mount, compared with the agent's folder (the box's `/`).
final class LangSmithMountTests: MountTestCase {
  override var agentArguments: [String] { LangSmithAgent.arguments }
  override var agentEnvironment: [String: String]? { LangSmithAgent.environment }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try LangSmithAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testFileToolsMatchTheBackingFolder() throws {
    try sh("printf 'hello\\n' > scratch/a.txt && cp scratch/a.txt mnt/a.txt")
    XCTAssertEqual(try sh("cat mnt/a.txt"), "hello\n")
    XCTAssertEqual(try String(contentsOfFile: root + "/a.txt", encoding: .utf8), "hello\n")
    try sh("mkdir mnt/d && cp mnt/a.txt mnt/d/b.txt && chmod 640 mnt/d/b.txt")
    XCTAssertTrue(try sh("ls -l mnt/d").contains("-rw-r----- "))
    try sh("mv mnt/d/b.txt mnt/d/c.txt && rm mnt/a.txt")
    try sh("test ! -e root/a.txt && test -f root/d/c.txt")
    // A vim-style save: the new content under a temporary name, renamed over the file.
    try sh("printf 'saved\\n' > mnt/d/.c.txt.swp && mv mnt/d/.c.txt.swp mnt/d/c.txt")
    XCTAssertEqual(try String(contentsOfFile: root + "/d/c.txt", encoding: .utf8), "saved\n")
    // Binary content both ways: a streamed multipart upload, then ranged reads.
    try sh("head -c 3000000 /dev/urandom > scratch/big && cp scratch/big mnt/big")
    try sh("cmp scratch/big root/big && cmp scratch/big mnt/big")
    try sh(
      "dd if=mnt/big of=scratch/part bs=4096 skip=300 count=2 status=none && dd if=scratch/big bs=4096 skip=300 count=2 status=none | cmp - scratch/part"
    )
    try sh(
      "mkdir -p scratch/tree/sub/deeper && printf x > scratch/tree/one && head -c 100000 /dev/urandom > scratch/tree/sub/two && ln -s one scratch/tree/link && chmod 750 scratch/tree/sub && rsync -a scratch/tree/ mnt/tree/ && diff -r scratch/tree mnt/tree"
    )
    try sh("diff -r scratch/tree root/tree")
    XCTAssertEqual(try sh("readlink mnt/tree/link"), "one\n")
    try sh("rm -r mnt/d")
    try sh("test ! -e root/d")
    try assertMountMatchesRoot()
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
    let other = workDirectory.path + "/scratch/env-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    try sh("printf 'env\\n' > root/env.txt")
    let child = try ChildProcess(
      executable: BuiltProducts.executable("sandbox-mount"),
      arguments: ["langsmith://any-box", other, "-f"],
      environment: [
        "LANGSMITH_ENDPOINT": agent.url + "/api/v1", "LANGSMITH_API_KEY": LangSmithAgent.apiKey,
      ])
    defer {
      _ = try? runCommand(["fusermount3", "-u", other], timeout: 10)
      child.stop()
    }
    let deadline = Date().addingTimeInterval(20)
    while !RunningMount.isMounted(other) && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    XCTAssertTrue(RunningMount.isMounted(other), child.standardError)
    XCTAssertEqual(try String(contentsOfFile: other + "/env.txt", encoding: .utf8), "env\n")
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
