import Backend
import ExecLayer
import Foundation
import TestSupport
import XCTest

@testable import LangSmithBackend

/// The pieces of `langsmith://` that need no agent: the SSE join by offset (what a resume after
/// a cut stream relies on), the command line, and the endpoint the SDK derives.
final class LangSmithBackendTests: XCTestCase {
  private func event(_ name: String, _ json: String) -> String {
    "event: \(name)\ndata: \(json)\n\n"
  }

  private func output(_ stream: String, _ text: String, at offset: Int) -> String {
    event(
      stream,
      "{\"data\":\"\(Data(text.utf8).base64EncodedString())\",\"offset\":\(offset)}")
  }

  /// A stream cut in the middle of an event, then resumed from the offsets held: the replayed
  /// bytes are skipped, nothing is lost or repeated.
  func testAResumedStreamJoinsByOffset() throws {
    var stream = EventStream(outputLimit: 1 << 20)
    let first =
      event("started", "{\"command_id\":\"c\",\"pid\":1}") + output("stdout", "hello ", at: 0)
      + output("stderr", "warn", at: 0) + "event: stdout\ndata: {\"data\":\"d29y"
    try stream.consume(Array(first.utf8), context: "test")
    XCTAssertNil(try stream.outcome(context: "test"))
    XCTAssertEqual(stream.stdout.count, 6)
    // The server's ring replays from an earlier offset than asked: the overlap is dropped.
    let second =
      event("started", "{\"command_id\":\"c\",\"pid\":1}") + output("stdout", "o world", at: 4)
      + output("stdout", "!", at: 11) + event("stream_end", "{\"stream\":\"stdout\",\"offset\":12}")
      + event("exit", "{\"exit_code\":3}")
    try stream.consume(Array(second.utf8), context: "test")
    let outcome = try XCTUnwrap(try stream.outcome(context: "test"))
    XCTAssertEqual(String(decoding: outcome.stdout, as: UTF8.self), "hello world!")
    XCTAssertEqual(String(decoding: outcome.stderr, as: UTF8.self), "warn")
    XCTAssertEqual(outcome.exitCode, 3)
  }

  /// Output the server no longer has (its ring moved past the offset) is EIO, never a gap.
  func testLostOutputIsEIO() throws {
    var stream = EventStream(outputLimit: 1 << 20)
    XCTAssertThrowsError(
      try stream.consume(Array(output("stdout", "late", at: 10).utf8), context: "test")
    ) { XCTAssertEqual(($0 as? RemoteError)?.errno, EIO) }
  }

  func testATimeoutIsETIMEDOUT() throws {
    var stream = EventStream(outputLimit: 1 << 20)
    try stream.consume(
      Array(event("error", "{\"error_type\":\"CommandTimeout\",\"error\":\"late\"}").utf8),
      context: "test")
    XCTAssertThrowsError(try stream.outcome(context: "test")) {
      XCTAssertEqual(($0 as? RemoteError)?.errno, ETIMEDOUT)
    }
  }

  func testTheCommandLineQuotesEveryWord() throws {
    let command = ProcessCommand("/bin/sh", ["-c", "echo \"$1\"", "sh", "it's"])
    XCTAssertEqual(command.shellLine, #"'/bin/sh' '-c' 'echo "$1"' 'sh' 'it'\''s'"#)
    let start = try LangSmithSSEExecutor.start(
      ProcessCommand("cat", [], standardInput: Array("in".utf8)), id: "c", defaultTimeout: 60)
    XCTAssertEqual(start.command, "printf %s 'aW4=' | base64 -d | 'cat'")
  }

  /// `LANGSMITH_ENDPOINT` as the SDK derives the control plane from it.
  func testTheControlPlaneIsDerivedAsTheSDKDoes() throws {
    for endpoint in [
      "https://api.smith.langchain.com", "https://api.smith.langchain.com/",
      "https://api.smith.langchain.com/api", "https://api.smith.langchain.com/api/v1",
    ] {
      XCTAssertEqual(
        LangSmithConfiguration.controlPlane(endpoint),
        "https://api.smith.langchain.com/api/v2/sandboxes", endpoint)
    }
    let configuration = try LangSmithConfiguration.fromEnvironment(
      boxName: "b", apiKey: nil, endpoint: nil,
      environment: ["LANGCHAIN_API_KEY": "k", "LANGSMITH_ENDPOINT": "http://h:1"])
    XCTAssertEqual(configuration.apiKey, "k")
    XCTAssertEqual(configuration.endpoint, "http://h:1")
    XCTAssertThrowsError(
      try LangSmithConfiguration.fromEnvironment(
        boxName: "b", apiKey: nil, endpoint: nil, environment: [:]))
  }

  /// Against the agent: a stream cut while the command pauses (the stall limit, one second
  /// without a byte; no retries) is resumed by offset, and the output arrives whole, nothing
  /// lost or repeated.
  func testACutStreamIsResumedByOffset() async throws {
    let root = try TemporaryDirectory(prefix: "langsmith-resume")
    defer { root.remove() }
    let agent = try RunningAgent(root: root.path, arguments: ["--protocol", "langsmith"])
    defer { agent.stop() }
    var configuration = LangSmithConfiguration(boxName: "resume", apiKey: "any")
    configuration.endpoint = agent.url
    configuration.lowSpeedTime = 1
    configuration.retryDelays = []
    configuration.streamResumes = 20
    let client = try LangSmithClient(configuration: configuration)
    defer { client.http.loop.shutdown() }
    try await client.lookUpBox()
    let command = ProcessCommand(
      "/bin/sh", ["-c", "printf one; printf ' two' >&2; sleep 8; printf ' three'"])
    let outcome = try await LangSmithSSEExecutor(client: client).run(command)
    XCTAssertEqual(String(decoding: outcome.stdout, as: UTF8.self), "one three")
    XCTAssertEqual(String(decoding: outcome.stderr, as: UTF8.self), " two")
    XCTAssertEqual(outcome.exitCode, 0)

    // Without resumes the same cut is an error, not a partial outcome.
    configuration.streamResumes = 0
    let impatient = try LangSmithClient(configuration: configuration)
    defer { impatient.http.loop.shutdown() }
    try await impatient.lookUpBox()
    do {
      _ = try await LangSmithSSEExecutor(client: impatient).run(command)
      XCTFail("a cut stream without resumes succeeded")
    } catch let error as RemoteError {
      XCTAssertEqual(error.errno, EIO)
    }
  }
}

/// The WebSocket command stream against the agent, through a proxy that cuts it.
final class LangSmithWebSocketTests: XCTestCase {
  /// 100,000 numbered lines (588,895 bytes), so a cut lands in the middle of the output.
  private let longOutput = ProcessCommand("/bin/sh", ["-c", "seq 1 100000; echo done >&2"])
  private let expected = (1...100_000).map(String.init).joined(separator: "\n") + "\n"

  private func withAgent(
    _ body: (_ agent: RunningAgent, _ configuration: LangSmithConfiguration) async throws -> Void
  ) async throws {
    let root = try TemporaryDirectory(prefix: "langsmith-ws")
    defer { root.remove() }
    let agent = try RunningAgent(root: root.path, arguments: ["--protocol", "langsmith"])
    defer { agent.stop() }
    var configuration = LangSmithConfiguration(boxName: "ws", apiKey: "any")
    configuration.retryDelays = [0.1]
    try await body(agent, configuration)
  }

  private func run(
    _ command: ProcessCommand, through proxy: CuttingProxy,
    _ configuration: LangSmithConfiguration
  ) async throws -> ProcessOutcome {
    var configuration = configuration
    configuration.endpoint = proxy.url
    let client = try LangSmithClient(configuration: configuration)
    defer { client.http.loop.shutdown() }
    try await client.lookUpBox()
    return try await LangSmithWebSocketExecutor(client: client).run(command)
  }

  private func port(of url: String) -> Int { Int(url.split(separator: ":").last!)! }

  /// A connection dropped in the middle of a frame is reattached from the offsets held:
  /// the output arrives whole, nothing lost or repeated.
  func testACutConnectionIsReattachedByOffset() async throws {
    try await withAgent { agent, configuration in
      let proxy = try CuttingProxy(upstreamPort: port(of: agent.url), afterBytes: 200_000)
      defer { proxy.stop() }
      let outcome = try await run(longOutput, through: proxy, configuration)
      XCTAssertEqual(proxy.cuts, 1)
      XCTAssertEqual(outcome.exitCode, 0)
      XCTAssertEqual(outcome.stdout.count, expected.utf8.count)
      XCTAssertTrue(String(decoding: outcome.stdout, as: UTF8.self) == expected)
      XCTAssertEqual(String(decoding: outcome.stderr, as: UTF8.self), "done\n")

      // Without reattaching, the same cut is an error, never a partial outcome.
      var impatient = configuration
      impatient.streamResumes = 0
      let again = try CuttingProxy(upstreamPort: port(of: agent.url), afterBytes: 200_000)
      defer { again.stop() }
      do {
        _ = try await run(longOutput, through: again, impatient)
        XCTFail("a cut connection without reattaching succeeded")
      } catch let error as RemoteError {
        XCTAssertEqual(error.errno, EIO)
      }
    }
  }

  /// Close code 1001 (the server reloading) in the middle of the output: reattached.
  func testGoingAwayIsReattached() async throws {
    try await withAgent { agent, configuration in
      let proxy = try CuttingProxy(
        upstreamPort: port(of: agent.url), afterBytes: 100_000, closeCode: 1001, cuts: 2)
      defer { proxy.stop() }
      let outcome = try await run(longOutput, through: proxy, configuration)
      XCTAssertEqual(proxy.cuts, 2)
      XCTAssertTrue(String(decoding: outcome.stdout, as: UTF8.self) == expected)
      XCTAssertEqual(outcome.exitCode, 0)
    }
  }

  /// stdin of any size and any bytes (base64 `input` messages), and the exit code.
  func testStandardInputIsBinarySafeAndUnbounded() async throws {
    try await withAgent { agent, configuration in
      let proxy = try CuttingProxy(upstreamPort: port(of: agent.url), afterBytes: 0, cuts: 0)
      defer { proxy.stop() }
      let input = (0..<(600 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }
      let outcome = try await run(
        ProcessCommand(
          "/bin/sh", ["-c", "od -An -tx1 -v | tr -d ' \\n'; exit 3"], standardInput: input),
        through: proxy, configuration)
      let hex = input.map { String(format: "%02x", $0) }.joined()
      XCTAssertTrue(String(decoding: outcome.stdout, as: UTF8.self) == hex)
      XCTAssertEqual(outcome.exitCode, 3)
    }
  }

  /// A server that accepts the connection but never answers (stopped) fails the command with
  /// EIO at the stall limit (`--io-timeout`), not at the command's own deadline.
  func testAStalledServerIsEIOAtTheStallLimit() async throws {
    try await withAgent { agent, configuration in
      var configuration = configuration
      configuration.endpoint = agent.url
      configuration.lowSpeedTime = 2
      configuration.requestTimeout = 120
      let client = try LangSmithClient(configuration: configuration)
      defer { client.http.loop.shutdown() }
      try await client.lookUpBox()
      let pid = agent.child.process.processIdentifier
      kill(pid, SIGSTOP)
      defer { kill(pid, SIGCONT) }
      let started = Date()
      do {
        _ = try await LangSmithWebSocketExecutor(client: client).run(
          ProcessCommand("/bin/true", []))
        XCTFail("a stopped server answered")
      } catch let error as RemoteError {
        XCTAssertEqual(error.errno, EIO)
      }
      // Well below the command's 120 s deadline (+10): the stall limit cut it.
      XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    }
  }

  /// The SDK's feature switch picks SSE; the WebSocket is the default.
  func testTheFeatureListPicksTheCommandStream() throws {
    XCTAssertFalse(LangSmithConfiguration.sandboxSSEExec(""))
    XCTAssertTrue(LangSmithConfiguration.sandboxSSEExec("other, Sandbox-SSE-Exec"))
    XCTAssertFalse(LangSmithConfiguration.sandboxSSEExec("sandbox_sse_exec,nosandbox_sse_exec"))
    let configuration = try LangSmithConfiguration.fromEnvironment(
      boxName: "b", apiKey: "k", endpoint: nil,
      environment: ["LANGSMITH_EXPERIMENTAL_FEATURES": "sandbox_sse_exec"])
    XCTAssertEqual(configuration.commandStream, .serverSentEvents)
  }
}
