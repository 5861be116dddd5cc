import Foundation
import TestSupport
import XCTest

/// Scripts/acceptance/*.sh (rsync, vim, atomic save, Emacs locks, git, tar, sqlite3, make) through a
/// real mount, once against an agent serving its extension and once against `--envd-compat`, which
/// leaves the mount stock envd's primitives only. Each script checks the mount and the backing folder.
final class AcceptanceTests: XCTestCase {
  enum AgentMode: String {
    case agentExtension = "extension"
    case stockEnvd = "stock envd (--envd-compat)"
    case vercel = "vercel:// (--protocol vercel)"
    case langSmith = "langsmith:// (--protocol langsmith)"
    case coreWeave = "cwsandbox:// (--protocol coreweave)"

    var agentArguments: [String] {
      switch self {
      case .agentExtension: []
      case .stockEnvd: ["--envd-compat"]
      case .vercel: VercelAgent.arguments
      case .langSmith: LangSmithAgent.arguments
      case .coreWeave: CoreWeaveAgent.arguments
      }
    }

    var agentEnvironment: [String: String]? {
      switch self {
      case .vercel: VercelAgent.environment
      case .langSmith: LangSmithAgent.environment
      case .coreWeave: CoreWeaveAgent.environment
      default: nil
      }
    }

    /// The mount's URL and options for the agent at `agentURL`.
    func mountTarget(agentURL: String, folder: String) throws -> (
      url: String, arguments: [String]
    ) {
      switch self {
      case .vercel: try VercelAgent.mountTarget(agentURL: agentURL, folder: folder)
      case .langSmith: try LangSmithAgent.mountTarget(agentURL: agentURL, folder: folder)
      case .coreWeave: try CoreWeaveAgent.mountTarget(agentURL: agentURL, folder: folder)
      default: (agentURL, [])
      }
    }
  }

  static let scriptsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Scripts/acceptance").path

  private var sandbox: MountedSandbox?

  override func tearDown() {
    sandbox?.close()
    sandbox = nil
    super.tearDown()
  }

  /// Mounts a fresh agent root in `mode` and runs `Scripts/acceptance/<name>.sh MOUNT ROOT`.
  private func runScript(
    _ name: String, _ mode: AgentMode, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let sandbox = try MountedSandbox(prefix: "acceptance-\(name)")
    self.sandbox = sandbox
    try sandbox.start(
      agentArguments: mode.agentArguments, agentEnvironment: mode.agentEnvironment
    ) { agentURL in
      try mode.mountTarget(agentURL: agentURL, folder: sandbox.workDirectory.path)
    }
    let (root, mountpoint) = (sandbox.root, sandbox.mountpoint)

    let script = Self.scriptsDirectory + "/\(name).sh"
    let result = try runCommand([script, mountpoint, root], timeout: 300)
    guard result.status != 0 else { return }
    let output = (result.output + result.error).split(separator: "\n").suffix(60)
      .joined(separator: "\n")
    // The script's verdict, and the first error line (often the tool's own message) if another.
    let errorLines = result.error.split(separator: "\n")
    let verdict =
      errorLines.first { $0.hasPrefix("FAIL") } ?? errorLines.last ?? "(no error output)"
    let firstLine = errorLines.first ?? verdict
    let firstError =
      firstLine == verdict ? String(verdict) : "\(verdict) (first error: \(firstLine))"
    let mountLog = (sandbox.mount?.child.standardError ?? "").split(separator: "\n").suffix(15)
      .joined(separator: "\n")
    XCTFail(
      """
      \(name).sh through the mount, agent mode \(mode.rawValue): exit \(result.status): \(firstError)
      --- script output (last 60 lines) ---
      \(output)
      --- sandbox-mount log (last 15 lines) ---
      \(mountLog)
      """, file: file, line: line)
  }

  /// The scripts themselves are right: on a plain local folder (mount and backing folder the same)
  /// every one passes.
  func testScriptsPassOnLocalFolder() throws {
    let sandbox = try MountedSandbox(prefix: "acceptance-local")
    self.sandbox = sandbox
    let local = sandbox.root
    let result = try runCommand(
      [Self.scriptsDirectory + "/run-all.sh", local, local], timeout: 300)
    XCTAssertEqual(result.status, 0, result.output + result.error)
    XCTAssertTrue(result.output.contains("8 passed, 0 failed"), result.output)
  }

  func testRsyncExtension() throws { try runScript("rsync", .agentExtension) }
  func testRsyncStockEnvd() throws { try runScript("rsync", .stockEnvd) }

  func testVimExtension() throws { try runScript("vim", .agentExtension) }
  func testVimStockEnvd() throws { try runScript("vim", .stockEnvd) }

  func testAtomicSaveExtension() throws { try runScript("atomic-save", .agentExtension) }
  func testAtomicSaveStockEnvd() throws { try runScript("atomic-save", .stockEnvd) }

  func testEmacsLockExtension() throws { try runScript("emacs-lock", .agentExtension) }
  func testEmacsLockStockEnvd() throws { try runScript("emacs-lock", .stockEnvd) }

  func testGitExtension() throws { try runScript("git", .agentExtension) }
  func testGitStockEnvd() throws { try runScript("git", .stockEnvd) }

  func testTarExtension() throws { try runScript("tar", .agentExtension) }
  func testTarStockEnvd() throws { try runScript("tar", .stockEnvd) }

  func testSqliteExtension() throws { try runScript("sqlite", .agentExtension) }
  func testSqliteStockEnvd() throws { try runScript("sqlite", .stockEnvd) }

  func testMakeExtension() throws { try runScript("make", .agentExtension) }
  func testMakeStockEnvd() throws { try runScript("make", .stockEnvd) }

  func testRsyncVercel() throws { try runScript("rsync", .vercel) }
  func testVimVercel() throws { try runScript("vim", .vercel) }
  func testAtomicSaveVercel() throws { try runScript("atomic-save", .vercel) }
  func testEmacsLockVercel() throws { try runScript("emacs-lock", .vercel) }
  func testGitVercel() throws { try runScript("git", .vercel) }
  func testTarVercel() throws { try runScript("tar", .vercel) }
  func testSqliteVercel() throws { try runScript("sqlite", .vercel) }
  func testMakeVercel() throws { try runScript("make", .vercel) }

  func testRsyncLangSmith() throws { try runScript("rsync", .langSmith) }
  func testVimLangSmith() throws { try runScript("vim", .langSmith) }
  func testAtomicSaveLangSmith() throws { try runScript("atomic-save", .langSmith) }
  func testEmacsLockLangSmith() throws { try runScript("emacs-lock", .langSmith) }
  func testGitLangSmith() throws { try runScript("git", .langSmith) }
  func testTarLangSmith() throws { try runScript("tar", .langSmith) }
  func testSqliteLangSmith() throws { try runScript("sqlite", .langSmith) }
  func testMakeLangSmith() throws { try runScript("make", .langSmith) }

  func testRsyncCoreWeave() throws { try runScript("rsync", .coreWeave) }
  func testVimCoreWeave() throws { try runScript("vim", .coreWeave) }
  func testAtomicSaveCoreWeave() throws { try runScript("atomic-save", .coreWeave) }
  func testEmacsLockCoreWeave() throws { try runScript("emacs-lock", .coreWeave) }
  func testGitCoreWeave() throws { try runScript("git", .coreWeave) }
  func testTarCoreWeave() throws { try runScript("tar", .coreWeave) }
  func testSqliteCoreWeave() throws { try runScript("sqlite", .coreWeave) }
  func testMakeCoreWeave() throws { try runScript("make", .coreWeave) }
}
