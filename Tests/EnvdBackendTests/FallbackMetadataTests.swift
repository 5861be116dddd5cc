import Backend
import EnvdBackend
import Foundation
import XCTest

/// The same operations against `sandbox-agent --envd-compat` (no extension): envd's primitives
/// and `process.Process/Start` fallbacks.
final class FallbackMetadataTests: XCTestCase {
  private var fixture: AgentFixture!
  private var checks: MetadataChecks!

  override func setUp() async throws {
    fixture = try AgentFixture(arguments: ["--envd-compat"])
    let backend = try fixture.backend()
    try await backend.verifyConnection()
    checks = MetadataChecks(fixture: fixture, backend: backend, hasExtension: false)
    let capabilities = await backend.capabilities()
    XCTAssertFalse(capabilities.richAttributes)
  }

  override func tearDown() { fixture?.close() }

  func testSetAttributes() async throws { try await checks.setAttributes() }
  func testSymlinks() async throws { try await checks.symlinks() }
  func testHardLinks() async throws { try await checks.hardLinks() }
  func testRenameFlags() async throws { try await checks.renameFlags() }
  func testCreation() async throws { try await checks.creation() }
  func testRemoval() async throws { try await checks.removal() }
  func testStatistics() async throws { try await checks.statistics() }
  func testConcurrentChanges() async throws { try await checks.concurrentChanges() }
  func testFsync() async throws { try await checks.fsync() }

  func testPathsWithShellCharactersStayArguments() async throws {
    let name = "/$(touch pwned); `x` 'q' \"d\" *"
    try fixture.write(name, [1])
    _ = try await checks.backend.setAttributes(name, RemoteAttributeChanges(mode: 0o604))
    XCTAssertEqual(checks.diskStat(name).st_mode & 0o777, 0o604)
    XCTAssertFalse(fixture.exists("/pwned"))
    XCTAssertFalse(FileManager.default.fileExists(atPath: "/pwned"))
    _ = try await checks.backend.createSymlink("/-n", target: "-e $(x)")
    let text = try await checks.backend.readLink("/-n")
    XCTAssertEqual(text, "-e $(x)")
  }

}
