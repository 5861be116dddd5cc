import Backend
import EnvdBackend
import Foundation
import TestSupport
import XCTest

/// A real agent on a temporary root, and backends talking to it. `close()` always cleans up.
final class AgentFixture: @unchecked Sendable {
  let directory: TemporaryDirectory
  let agent: RunningAgent
  private var backends: [any EnvdRemote] = []

  init(environment: [String: String]? = nil, arguments: [String] = []) throws {
    directory = try TemporaryDirectory(prefix: "envd-backend")
    do {
      agent = try RunningAgent(
        root: directory.path, arguments: arguments, environment: environment)
    } catch {
      directory.remove()
      throw error
    }
  }

  var root: String { directory.path }
  var pid: Int32 { agent.child.process.processIdentifier }

  /// A backend connected as the mount connects (`EnvdBackend.connect`).
  func backend(_ configure: (inout EnvdConfiguration) -> Void = { _ in }) async throws
    -> any EnvdRemote
  {
    var configuration = EnvdConfiguration(baseURL: agent.url)
    configure(&configuration)
    let backend = try await EnvdBackend.connect(configuration: configuration)
    backends.append(backend)
    return backend
  }

  func close() {
    for backend in backends { backend.shutdown() }
    if agent.child.isRunning {
      kill(pid, SIGCONT)  // a test may have stopped it
      agent.stop()
    }
    directory.remove()
  }

  // MARK: the agent's root on disk

  func path(_ relative: String) -> String { root + relative }

  @discardableResult
  func write(_ relative: String, _ bytes: [UInt8]) throws -> [UInt8] {
    let parent = (path(relative) as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: path(relative)))
    return bytes
  }

  func write(_ relative: String, randomBytes count: Int) throws -> [UInt8] {
    try write(relative, randomBytes(count))
  }

  func contents(_ relative: String) throws -> [UInt8] {
    try Array(Data(contentsOf: URL(fileURLWithPath: path(relative))))
  }

  func makeDirectory(_ relative: String) throws {
    try FileManager.default.createDirectory(
      atPath: path(relative), withIntermediateDirectories: true)
  }

  func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path(relative)) }
}

func randomBytes(_ count: Int) throws -> [UInt8] {
  let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
  defer { try? handle.close() }
  return Array(try handle.read(upToCount: count) ?? Data())
}

/// Seconds `body` took.
func timed(_ body: () async throws -> Void) async rethrows -> Double {
  let start = ContinuousClock.now
  try await body()
  let elapsed = ContinuousClock.now - start
  return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
