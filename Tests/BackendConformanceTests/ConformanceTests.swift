import Backend
import CoreWeaveBackend
import EnvdBackend
import ExecLayer
import Foundation
import LangSmithBackend
import TestSupport
import VercelBackend
import XCTest

/// The conformance suite for one backend. A backend joins with a subclass that overrides
/// `makeBackend` (and `tearDown` to stop what it started) and lists the checks: XCTest on
/// Linux finds only test methods a class declares itself.
class ConformanceTestCase: XCTestCase {
  private var scratch: TemporaryDirectory?
  var suite: BackendConformance!

  /// A backend on an empty root, or nil to skip this (base) class.
  func makeBackend() async throws -> (any RemoteFilesystem)? { nil }

  override func setUp() async throws {
    guard let backend = try await makeBackend() else { throw XCTSkip("no backend") }
    let scratch = try TemporaryDirectory(prefix: "conformance")
    self.scratch = scratch
    suite = BackendConformance(backend: backend, scratch: scratch.path)
  }

  override func tearDown() async throws {
    scratch?.remove()
  }
}

final class InMemoryConformanceTests: ConformanceTestCase {
  override func makeBackend() async throws -> (any RemoteFilesystem)? {
    InMemoryRemoteFilesystem()
  }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

/// A real agent on a temporary root; `arguments` choose its mode.
class AgentConformanceTestCase: ConformanceTestCase {
  var agentArguments: [String] { [] }
  private var root: TemporaryDirectory?
  private var agent: RunningAgent?
  private var backend: (any EnvdRemote)?

  override func makeBackend() async throws -> (any RemoteFilesystem)? {
    let root = try TemporaryDirectory(prefix: "conformance-agent")
    self.root = root
    let agent = try RunningAgent(root: root.path, arguments: agentArguments)
    self.agent = agent
    let backend = try await EnvdBackend.connect(
      configuration: EnvdConfiguration(baseURL: agent.url))
    self.backend = backend
    return backend
  }

  override func tearDown() async throws {
    backend?.shutdown()
    agent?.stop()
    root?.remove()
    try await super.tearDown()
  }
}

final class AgentExtensionConformanceTests: AgentConformanceTestCase {
  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

final class StockEnvdConformanceTests: AgentConformanceTestCase {
  override var agentArguments: [String] { ["--envd-compat"] }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

/// A vendor protocol of the agent (`--protocol …`) on a temporary root, through the vendor's
/// backend: subclasses say how to start the agent and connect.
class ProtocolAgentConformanceTestCase: ConformanceTestCase {
  var agentArguments: [String] { [] }
  var agentEnvironment: [String: String]? { nil }
  private var root: TemporaryDirectory?
  private var agent: RunningAgent?
  private var shutdown: (@Sendable () async -> Void)?

  /// The backend on the agent at `agentURL`, and how to stop it.
  func connect(agentURL: String) async throws -> (
    backend: any RemoteFilesystem, shutdown: @Sendable () async -> Void
  ) {
    fatalError("override connect(agentURL:)")
  }

  override func makeBackend() async throws -> (any RemoteFilesystem)? {
    let root = try TemporaryDirectory(prefix: "conformance-protocol")
    self.root = root
    let agent = try RunningAgent(
      root: root.path, arguments: agentArguments, environment: agentEnvironment)
    self.agent = agent
    let (backend, shutdown) = try await connect(agentURL: agent.url)
    self.shutdown = shutdown
    return backend
  }

  override func tearDown() async throws {
    await shutdown?()
    agent?.stop()
    root?.remove()
    try await super.tearDown()
  }
}

/// `sandbox-agent --protocol vercel` (with a bearer token) through the `vercel://` backend,
/// mounted at Vercel's working folder `/vercel/sandbox`.
final class VercelConformanceTests: ProtocolAgentConformanceTestCase {
  override var agentArguments: [String] { ["--protocol", "vercel"] }
  override var agentEnvironment: [String: String]? {
    ["SANDBOX_AGENT_TOKEN": "vercel-test-token"]
  }

  override func connect(agentURL: String) async throws -> (
    backend: any RemoteFilesystem, shutdown: @Sendable () async -> Void
  ) {
    var configuration = VercelConfiguration(sandboxName: "conformance", token: "vercel-test-token")
    configuration.apiURL = agentURL + "/api"
    configuration.teamID = "team_test"
    configuration.remoteRoot = "/vercel/sandbox"
    let backend = try await VercelBackend.connect(configuration: configuration)
    return (backend, { await backend.shutdownWithoutBlocking() })
  }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

/// `sandbox-agent --protocol langsmith` (with an API key) through the `langsmith://` backend:
/// ranged `/download`, multipart `/upload`, metadata through commands over the WebSocket.
class LangSmithConformanceTests: ProtocolAgentConformanceTestCase {
  var commandStream: LangSmithConfiguration.CommandStream { .webSocket }

  override var agentArguments: [String] { ["--protocol", "langsmith"] }
  override var agentEnvironment: [String: String]? {
    ["SANDBOX_AGENT_TOKEN": "langsmith-test-key"]
  }

  override func connect(agentURL: String) async throws -> (
    backend: any RemoteFilesystem, shutdown: @Sendable () async -> Void
  ) {
    var configuration = LangSmithConfiguration(boxName: "conformance", apiKey: "langsmith-test-key")
    configuration.endpoint = agentURL
    configuration.commandStream = commandStream
    let backend = try await LangSmithBackend.connect(configuration: configuration)
    return (backend, { await backend.shutdownWithoutBlocking() })
  }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

/// The same over SSE (`LANGSMITH_EXPERIMENTAL_FEATURES=sandbox_sse_exec`): binary-safe output.
/// (Linux's XCTest lists only the test methods a class declares itself.)
final class LangSmithSSEConformanceTests: LangSmithConformanceTests {
  override var commandStream: LangSmithConfiguration.CommandStream { .serverSentEvents }

  override func testNamespace() async throws { try await suite.namespace() }
  override func testRenames() async throws { try await suite.renames() }
  override func testSetAttributes() async throws { try await suite.setAttributes() }
  override func testSymlinks() async throws { try await suite.symlinks() }
  override func testHardLinks() async throws { try await suite.hardLinks() }
  override func testCreation() async throws { try await suite.creation() }
  override func testReads() async throws { try await suite.reads() }
  override func testUploads() async throws { try await suite.uploads() }
  override func testBatches() async throws { try await suite.batches() }
  override func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  override func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  override func testStatistics() async throws { try await suite.statistics() }
  override func testFsync() async throws { try await suite.fsync() }
}

/// `sandbox-agent --protocol coreweave` (with an API key) through the `cwsandbox://` backend
/// over h2c gRPC: `ReadFile`/`WriteFile` up to the cap, `dd`/`cat` over `StreamExec` past it,
/// metadata through commands over `StreamExec`. A 1 MiB cap makes the suite's larger files
/// take the streamed paths.
final class CoreWeaveConformanceTests: ProtocolAgentConformanceTestCase {
  override var agentArguments: [String] {
    ["--protocol", "coreweave", "--sandbox-id", "conformance", "--coreweave-file-cap", "1048576"]
  }
  override var agentEnvironment: [String: String]? {
    ["SANDBOX_AGENT_TOKEN": "cwsandbox-test-key"]
  }

  override func connect(agentURL: String) async throws -> (
    backend: any RemoteFilesystem, shutdown: @Sendable () async -> Void
  ) {
    var configuration = CoreWeaveConfiguration(
      sandboxID: "conformance", apiKey: "cwsandbox-test-key")
    configuration.baseURL = agentURL
    configuration.ioTimeout = 2
    let backend = try await CoreWeaveBackend.connect(configuration: configuration)
    coreWeave = backend
    return (backend, { await backend.shutdownWithoutBlocking() })
  }

  private var coreWeave: CoreWeaveBackend!

  /// Past the cap: the upload streams through stdin, the download through `cat`, ranges through
  /// `dd`, each checked against the size stat'ed before.
  func testFilesOverTheCapStream() async throws {
    let content = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
    let scratch = try TemporaryDirectory(prefix: "coreweave-cap")
    defer { scratch.remove() }
    let local = scratch.path + "/big"
    FileManager.default.createFile(atPath: local, contents: Data(content))
    let answer = try await coreWeave.upload("/big", from: local)
    XCTAssertEqual(answer?.attributes.size, UInt64(content.count))
    let size = UInt64(content.count)
    let range = try await coreWeave.read(
      "/big", offset: 1_500_000, length: 1 << 20, expectedSize: size)
    XCTAssertEqual(range, Array(content[1_500_000..<(1_500_000 + (1 << 20))]))
    let copy = scratch.path + "/copy"
    let count = try await coreWeave.download("/big", expectedSize: size, to: copy)
    XCTAssertEqual(count, size)
    XCTAssertEqual(FileManager.default.contents(atPath: copy).map { [UInt8]($0) }, content)
    await assertRemoteError(EIO) {
      try await self.coreWeave.download("/big", expectedSize: size + 1, to: copy)
    }
    XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: copy)[.size] as? UInt64, 0)
    await assertRemoteError(ENOENT) {
      try await self.coreWeave.read("/none", offset: 2 << 20, length: 10, expectedSize: 3 << 20)
    }
    await assertRemoteError(ENOENT) {
      try await self.coreWeave.download("/none", expectedSize: 3 << 20, to: copy)
    }
  }

  /// A stream that moves nothing for `ioTimeout` (a read of a FIFO no one writes) is cancelled:
  /// EIO, not a hang. A command past its own timeout is ETIMEDOUT.
  func testAStalledStreamIsCancelledAndACommandHasADeadline() async throws {
    _ = try await coreWeave.makeNode("/fifo", mode: 0o010644, device: 0)
    let started = Date()
    await assertRemoteError(EIO) {
      try await self.coreWeave.read(
        "/fifo", offset: 8 << 20, length: 1 << 20, expectedSize: 9 << 20)
    }
    XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    await assertRemoteError(ETIMEDOUT) {
      _ = try await self.coreWeave.commandExecutor.run(
        ProcessCommand("/bin/sleep", ["20"], timeout: 1))
    }
    XCTAssertLessThan(Date().timeIntervalSince(started), 20)
  }

  /// Exec output is binary-safe both ways.
  func testCommandsCarryBytes() async throws {
    let bytes = (0..<256).map { UInt8($0) } + [0, 10, 13, 255]
    let outcome = try await coreWeave.commandExecutor.run(
      ProcessCommand("/bin/cat", [], standardInput: bytes))
    XCTAssertEqual(outcome.exitCode, 0)
    XCTAssertEqual(outcome.stdout, bytes)
  }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

/// Every operation through Vercel's `cmd` alone (`ExecOnlyFilesystem` over the backend's
/// executor): uploads go through stdin (base64 chunks with offsets), reads come back base64.
final class VercelCommandsConformanceTests: ProtocolAgentConformanceTestCase {
  override var agentArguments: [String] { ["--protocol", "vercel"] }

  override func connect(agentURL: String) async throws -> (
    backend: any RemoteFilesystem, shutdown: @Sendable () async -> Void
  ) {
    var configuration = VercelConfiguration(sandboxName: "commands", token: "any")
    configuration.apiURL = agentURL
    configuration.remoteRoot = "/vercel/sandbox"
    let backend = try await VercelBackend.connect(configuration: configuration)
    return (
      ExecOnlyFilesystem(executor: backend.commandExecutor, rootFolder: "/vercel/sandbox"),
      { await backend.shutdownWithoutBlocking() }
    )
  }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
}

/// A sandbox that only runs commands: the exec layer gives every operation (`ExecOnlyFilesystem`).
class ExecOnlyConformanceTests: ConformanceTestCase {
  var binarySafeOutput: Bool { true }
  private var root: TemporaryDirectory?

  override func makeBackend() async throws -> (any RemoteFilesystem)? {
    let root = try TemporaryDirectory(prefix: "conformance-exec")
    self.root = root
    return ExecOnlyFilesystem(
      executor: LocalShellExecutor(root: root.path, binarySafeOutput: binarySafeOutput))
  }

  override func tearDown() async throws {
    root?.remove()
    try await super.tearDown()
  }

  func testNamespace() async throws { try await suite.namespace() }
  func testRenames() async throws { try await suite.renames() }
  func testSetAttributes() async throws { try await suite.setAttributes() }
  func testSymlinks() async throws { try await suite.symlinks() }
  func testHardLinks() async throws { try await suite.hardLinks() }
  func testCreation() async throws { try await suite.creation() }
  func testReads() async throws { try await suite.reads() }
  func testUploads() async throws { try await suite.uploads() }
  func testBatches() async throws { try await suite.batches() }
  func testListingsMatchStats() async throws { try await suite.listingsMatchStats() }
  func testConcurrentChanges() async throws { try await suite.concurrentChanges() }
  func testStatistics() async throws { try await suite.statistics() }
  func testFsync() async throws { try await suite.fsync() }
}

/// The same over a text-only output channel: reads come back base64.
final class ExecOnlyTextChannelConformanceTests: ExecOnlyConformanceTests {
  override var binarySafeOutput: Bool { false }

  func testReadsThroughBase64() async throws { try await suite.reads() }
}
