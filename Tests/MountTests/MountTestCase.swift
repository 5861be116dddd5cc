import Foundation
import TestSupport
import XCTest

/// A real agent on a temporary root, and `sandbox-mount -f` of it on a temporary mountpoint.
/// tearDown always unmounts and stops both, whatever the test did.
class MountTestCase: XCTestCase {
  var sandbox: MountedSandbox!
  var workDirectory: TemporaryDirectory { sandbox.workDirectory }
  var root: String { sandbox.root }
  var mountpoint: String { sandbox.mountpoint }
  /// A local scratch folder for inputs and outputs of the tools under test.
  var scratch: String { workDirectory.path + "/scratch" }
  var agent: RunningAgent! { sandbox.agent }
  var mount: RunningMount! {
    get { sandbox.mount }
    set { sandbox.mount = newValue }
  }

  /// Extra `sandbox-mount` arguments for this class's mounts.
  var mountArguments: [String] { [] }
  /// Extra `sandbox-agent` arguments and environment for this class's agent.
  var agentArguments: [String] { [] }
  var agentEnvironment: [String: String]? { nil }
  /// What is mounted for the agent at `agentURL`: the URL itself, or e.g. `vercel://NAME`.
  func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    (agentURL, [])
  }

  override func setUpWithError() throws {
    try super.setUpWithError()
    sandbox = try MountedSandbox(prefix: "mount-test", folders: ["scratch"])
    do {
      try sandbox.start(
        agentArguments: agentArguments, agentEnvironment: agentEnvironment,
        mountArguments: mountArguments, mountTarget: mountTarget(agentURL:))
    } catch {
      sandbox.close()
      sandbox = nil
      throw error
    }
  }

  override func tearDown() {
    sandbox?.close()
    sandbox = nil
    super.tearDown()
  }

  /// Whether each command first waits until the mount's earlier changes reached the agent's
  /// folder (`sync mnt`, bounded): with write-back, tests that compare `root` with what they
  /// wrote through `mnt` must not race the drain. WriteBackTests look at the drain itself.
  var syncsBeforeEachCommand: Bool { true }

  private func prepared(_ script: String) -> String {
    syncsBeforeEachCommand ? "timeout 30 sync mnt 2>/dev/null; " + script : script
  }

  /// Agent requests so far whose log line holds `route` (an agent started with `--log-level
  /// debug` logs each).
  func loggedRequests(_ route: String) -> Int {
    occurrences(of: route, inLogOf: agent.child)
  }

  /// Kernel requests so far of `opcode` (FLUSH, OPEN, ...): libfuse's request log, of a mount
  /// started with `-d`.
  func kernelRequests(_ opcode: String) -> Int {
    occurrences(of: "opcode: \(opcode) (", inLogOf: mount.child)
  }

  /// After a moment for the last lines to arrive.
  private func occurrences(of text: String, inLogOf child: ChildProcess) -> Int {
    Thread.sleep(forTimeInterval: 0.2)
    return child.standardError.components(separatedBy: text).count - 1
  }

  /// Runs `script` with `/bin/sh -c` in the work folder, where `root`, `mnt` and `scratch` are;
  /// fails the test when it exits non-zero.
  @discardableResult
  func sh(
    _ script: String, timeout: TimeInterval = 300, file: StaticString = #filePath,
    line: UInt = #line
  )
    throws -> String
  {
    let result = try runCommand(
      ["/bin/sh", "-c", prepared(script)], currentDirectory: workDirectory.path,
      timeout: timeout)
    XCTAssertEqual(
      result.status, 0, "`\(script)` failed: \(result.error)\(result.output)", file: file,
      line: line)
    return result.output
  }

  /// Runs `script` and returns its status and output, for commands expected to fail.
  func shStatus(_ script: String, timeout: TimeInterval = 60) throws -> (
    status: Int32, output: String, error: String
  ) {
    try runCommand(
      ["/bin/sh", "-c", prepared(script)], currentDirectory: workDirectory.path,
      timeout: timeout)
  }

  /// Paths, types and file sizes below `folder`, one per line, sorted: equal listings mean
  /// equal shapes.
  func shape(of folder: String) throws -> String {
    try sh(
      "cd '\(folder)' && find . -mindepth 1 \\( -type f -printf '%P f %s\\n' \\) -o \\( -type d -printf '%P d\\n' \\) | LC_ALL=C sort"
    )
  }

  /// The mount shows what the agent's root holds: the same shape and the same bytes.
  func assertMountMatchesRoot(file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertEqual(try shape(of: mountpoint), try shape(of: root), file: file, line: line)
    try sh("diff -r root mnt", file: file, line: line)
  }
}
