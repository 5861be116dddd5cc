import Backend
import Foundation
import XCTest

@testable import EnvdBackend

/// The transfer thread as a task executor: light requests run on it, and none is stranded when
/// the backend shuts down.
final class TransferThreadTests: XCTestCase {
  private var fixture: AgentFixture!

  override func setUpWithError() throws { fixture = try AgentFixture() }
  override func tearDown() { fixture?.close() }

  func testATaskPreferringTheTransferThreadRunsThereAndGetsItsAnswers() async throws {
    let backend = try await fixture.backend()
    _ = try fixture.write("/f", randomBytes: 10_000)
    let task = Task(executorPreference: backend.transferThread) { () async throws -> Set<String> in
      try await TransferThreadTests.threadsAnswering(backend)
    }
    let threads = try await task.value
    XCTAssertEqual(threads, ["curl-multi"])
  }

  func testTasksOnTheTransferThreadEndWhenTheBackendShutsDown() async throws {
    let backend = try await fixture.backend()
    let executor = backend.transferThread
    await backend.shutdownWithoutBlocking()
    // The thread is gone: a task that prefers it still runs, and fails instead of hanging.
    let outcome = await Task(executorPreference: executor) { () -> Int32? in
      do {
        _ = try await backend.attributes(of: "/")
        return nil
      } catch let error as RemoteError {
        return error.errno
      } catch {
        return -1
      }
    }.value
    XCTAssertEqual(outcome, EIO)
  }

  func testShuttingDownFromTheTransferThreadDoesNotWaitForItself() async throws {
    let backend = try await fixture.backend()
    let started = ContinuousClock.now
    let task = Task(executorPreference: backend.transferThread) { () -> Void in
      TransferThreadTests.shutDown(backend)
    }
    await task.value
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
  }

  /// What a deinit on the transfer thread does.
  private static func shutDown(_ backend: any EnvdRemote) { backend.shutdown() }

  /// The names of the threads the task ran on after each of its requests.
  private static func threadsAnswering(_ backend: any EnvdRemote) async throws -> Set<String> {
    var names: Set<String> = []
    for _ in 0..<20 {
      let attributes = try await backend.attributes(of: "/f")
      XCTAssertEqual(attributes.size, 10_000)
      names.insert(threadName())
      let bytes = try await backend.read(
        "/f", offset: 5_000, length: 100, expectedSize: attributes.size)
      XCTAssertEqual(bytes.count, 100)
      names.insert(threadName())
    }
    return names
  }

  private static func threadName() -> String {
    let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
    return comm.trimmingCharacters(in: .whitespacesAndNewlines)
  }
}
