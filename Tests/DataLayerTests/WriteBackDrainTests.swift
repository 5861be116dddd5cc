import Backend
import DataLayer
import Foundation
import Logging
import TestSupport
import XCTest

/// The write-back drain over the in-memory backend.
final class WriteBackDrainTests: XCTestCase {
  private var folder: TemporaryDirectory!

  override func setUp() async throws {
    folder = try TemporaryDirectory(prefix: "write-back-drain")
  }

  override func tearDown() {
    folder?.remove()
  }

  /// A sync (or fsync) that arrives while the drain pauses to gather more changes cuts the
  /// pause short: `sandbox-mount sync` right after a small write waited out the pause.
  func testAWaiterCutsTheGatherPauseShort() async throws {
    let sandbox = InMemoryRemoteFilesystem()
    var configuration = WriteBackConfiguration(stateDirectory: folder.path)
    configuration.gatherDelay = .seconds(20)
    configuration.longestGather = .seconds(40)
    let writeBack = try WriteBackBackend(
      inner: sandbox, configuration: configuration, logger: Logger(label: "test"))
    _ = try await writeBack.createDirectory("/d", mode: 0o755)
    // The drain is pausing by now.
    try await Task.sleep(for: .milliseconds(300))
    let started = ContinuousClock.now
    try await writeBack.drain()
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(10))
    let made = try await sandbox.attributes(of: "/d")
    XCTAssertEqual(made.type, .directory)
  }
}
