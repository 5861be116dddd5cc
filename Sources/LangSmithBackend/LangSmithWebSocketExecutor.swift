import Backend
import ExecLayer
import Foundation
import HTTPTransport
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Commands over LangSmith's WebSocket `/execute/ws`, the SDK's default transport: one command
/// per connection, `execute` with a client-chosen `command_id`, then `started`,
/// `stdout`/`stderr{data, offset}`, and `exit{exit_code}` or `error{error_type, error}`.
/// Output travels as JSON strings, so the channel is not binary-safe (the exec layer then
/// encodes what it needs). stdin goes as base64 `input` messages that `base64 -d` unpacks in
/// front of the command, so it is binary-safe and has no size limit.
///
/// A connection that drops before the exit (a cut, or close code 1001 when the server
/// reloads) is reattached with `reconnect` from the byte offsets already held: nothing is lost
/// and nothing repeated. A command whose stdin was cut short cannot be resumed: it is started
/// with `kill_on_disconnect`, and the call fails.
struct LangSmithWebSocketExecutor: ProcessExecutor {
  let client: LangSmithClient

  var binarySafeOutput: Bool { false }

  /// stdin bytes per `input` message (as base64 text, a third more).
  static let inputChunk = 48 << 10

  private struct Execute: Encodable {
    var type = "execute"
    var command: String
    var command_id: String
    var timeout_seconds: Int
    var shell = "/bin/sh"
    var env: [String: String]
    var cwd: String
    var kill_on_disconnect: Bool
    var ttl_seconds = 120
    var close_stdin: Bool
  }

  private struct Reconnect: Encodable {
    var type = "reconnect"
    var command_id: String
    var stdout_offset: Int
    var stderr_offset: Int
  }

  private struct Message: Decodable {
    var type: String
    var data: String?
    var offset: Int?
    var exit_code: Int32?
    var error_type: String?
    var error: String?
  }

  /// What one command's connections have gathered so far.
  private final class Gathered: Sendable {
    let stream: Mutex<EventStream>
    /// The server said `started`: a reconnect that finds no such command means it was lost.
    let started = Atomic<Bool>(false)
    init(outputLimit: Int) { stream = Mutex(EventStream(outputLimit: outputLimit)) }
  }

  func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
    let context = "command \(command.executable)"
    let id = UUID().uuidString.lowercased()
    let hasInput = !command.standardInput.isEmpty
    let timeout = Int((command.timeout ?? client.configuration.requestTimeout).rounded(.up))
    let execute = Execute(
      command: (hasInput ? "base64 -d | " : "") + command.shellLine, command_id: id,
      timeout_seconds: timeout, env: command.environment, cwd: command.workingDirectory,
      kill_on_disconnect: hasInput, close_stdin: !hasInput)
    let gathered = Gathered(outputLimit: command.outputLimit)
    try client.http.stall.check(context)
    // The server kills the command at its timeout; the connections wait a little longer.
    return try await withDeadline(seconds: Double(timeout) + 10, context: context) {
      try await attach(
        first: try encodeText(execute), input: command.standardInput, id: id,
        gathered: gathered, context: context)
    }
  }

  /// Connects until the command's end arrives. The first connection executes (and sends
  /// stdin); each later one reattaches by offset, or executes again under the same id when the
  /// server never heard of it.
  private func attach(
    first: String, input: [UInt8], id: String, gathered: Gathered, context: String
  ) async throws -> ProcessOutcome {
    var attempts = 0
    var reattaching = false
    while true {
      let broke: String
      var neverStarted = false
      do {
        let opening =
          reattaching
          ? try gathered.stream.withLock {
            try encodeText(
              Reconnect(
                command_id: id, stdout_offset: $0.stdout.count, stderr_offset: $0.stderr.count))
          } : first
        let closing = try await connect(
          send: opening, reattaching: reattaching, input: reattaching ? [] : input,
          gathered: gathered, context: context)
        if let outcome = try gathered.stream.withLock({ try $0.outcome(context: context) }) {
          return outcome
        }
        broke =
          closing.map {
            $0.closeCode == .goingAway
              ? "the server is reloading (1001)" : "closed with \($0.closeCode)"
          } ?? "the connection ended"
      } catch is NeverStarted {
        neverStarted = true
        broke = "the command never started"
      } catch let error as RemoteError {
        throw error
      } catch {
        // Nobody listens (a stopped or restarting server): each try is time the caller waits.
        // A stream that broke is still reattached: a reloading server comes back.
        if !reattaching && Self.refused(error) {
          throw RemoteError(errno: EIO, "\(context): cannot connect: \(error)")
        }
        broke = "\(error)"
      }
      // Its stdin may have been cut short, and the command was killed with the connection.
      if !input.isEmpty {
        throw RemoteError(errno: EIO, "\(context): the connection broke (\(broke))")
      }
      guard attempts < client.configuration.streamResumes else {
        throw RemoteError(
          errno: EIO,
          "\(context): the command stream broke off \(attempts + 1) times before the exit code (\(broke))"
        )
      }
      try await Task.sleep(for: .seconds(client.configuration.retryDelays.first ?? 0.5))
      attempts += 1
      // Executed again under the same id when the server never heard of it.
      reattaching = !neverStarted
    }
  }

  /// Whether every address refused the connection.
  private static func refused(_ error: any Error) -> Bool {
    guard let error = error as? NIOConnectionError, !error.connectionErrors.isEmpty else {
      return false
    }
    return error.connectionErrors.allSatisfy { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
  }

  /// A reconnect found no such command, and none was seen to start.
  private struct NeverStarted: Error {}

  /// One connection: sends `opening` (and `input`, then `close_stdin`), gathers messages until
  /// the command's end. Returns the server's close frame when the server closed first.
  private func connect(
    send opening: String, reattaching: Bool, input: [UInt8], gathered: Gathered, context: String
  )
    async throws -> WebSocketCloseFrame?
  {
    var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
    configuration.additionalHeaders[HTTPField.Name("X-Api-Key")!] = client.configuration.apiKey
    configuration.additionalHeaders[.userAgent] = LangSmithClient.userAgent
    configuration.closeTimeout = .seconds(2)
    // A server that stops answering pings is dropped within the stall limit (`--io-timeout`).
    let stallLimit = client.configuration.lowSpeedTime
    configuration.autoPing = .enabled(timePeriod: .milliseconds(Int(stallLimit * 500)))
    let url = client.webSocketURL("execute/ws")
    let tls = try client.webSocketTLS()
    // The server answers `started` at once, to an execute and to a reconnect alike.
    let answered = Flag()
    let settings = configuration
    do {
      return try await withStallLimit(
        stallLimit, answered: answered, marking: client.http.stall, context: context
      ) {
        try await WebSocketClient.connect(
          url: url, configuration: settings, tlsConfiguration: tls,
          logger: Logger(label: "sandbox-mount.langsmith.ws")
        ) { inbound, outbound, _ in
          try await outbound.write(.text(opening))
          if !input.isEmpty {
            let encoded = Array(Data(input).base64EncodedString().utf8)
            var start = 0
            let step = Self.inputChunk / 3 * 4
            while start < encoded.count {
              let chunk = String(
                decoding: encoded[start..<min(start + step, encoded.count)], as: UTF8.self)
              try await outbound.write(.text("{\"type\":\"input\",\"data\":\"\(chunk)\"}"))
              start += step
            }
            try await outbound.write(.text("{\"type\":\"close_stdin\"}"))
          }
          for try await message in inbound.messages(maxSize: 16 << 20) {
            guard case .text(let text) = message else { continue }
            guard let decoded = try? JSONDecoder().decode(Message.self, from: Data(text.utf8))
            else {
              throw RemoteError(errno: EIO, "\(context): unreadable message \(text.prefix(200))")
            }
            answered.value.store(true, ordering: .relaxed)
            if decoded.type == "started" { gathered.started.store(true, ordering: .relaxed) }
            if decoded.type == "error" && decoded.error_type == "CommandNotFound" && reattaching
              && !gathered.started.load(ordering: .relaxed)
            {
              throw NeverStarted()
            }
            let ended = try gathered.stream.withLock { stream in
              try stream.receive(
                decoded.type, bytes: Data((decoded.data ?? "").utf8), offset: decoded.offset,
                exitCode: decoded.exit_code,
                failure: decoded.error_type.map { ($0, decoded.error ?? "") }, context: context)
              return stream.exitCode != nil || stream.failure != nil
            }
            if ended { return }
          }
        }
      }
    } catch let error as WebSocketClientError {
      throw RemoteError(
        errno: EIO,
        "\(context): the WebSocket \(url) was refused (\(error)); check LANGSMITH_API_KEY and the box"
      )
    }
  }

  private func encodeText<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try LangSmithClient.encoder.encode(value), as: UTF8.self)
  }
}

final class Flag: Sendable {
  let value = Atomic<Bool>(false)
}

/// Runs `work`, failing with EIO when `answered` is still false after `seconds` (a server that
/// accepted the connection but never answered the upgrade or the first message), and then
/// taking the server as stalled (`stall`), as an HTTP request that timed out does.
private func withStallLimit<T: Sendable>(
  _ seconds: Double, answered: Flag, marking stall: StallLatch, context: String,
  _ work: @escaping @Sendable () async throws -> T
) async throws -> T {
  try await race(after: seconds, work) {
    if answered.value.load(ordering: .relaxed) { return nil }
    stall.markStalled()
    return RemoteError(errno: EIO, "\(context): no answer for \(Int(seconds)) s (--io-timeout)")
  }
}

/// Runs `work`, failing with ETIMEDOUT once `seconds` have passed.
func withDeadline<T: Sendable>(
  seconds: Double, context: String, _ work: @escaping @Sendable () async throws -> T
) async throws -> T {
  try await race(after: seconds, work) {
    RemoteError(errno: ETIMEDOUT, "\(context): no answer within \(Int(seconds)) s")
  }
}

/// `work`'s result, or `expiry`'s error once `seconds` have passed (nil: keep waiting). The
/// work is cancelled then but not awaited: a connection stuck in NIO's upgrade ignores
/// cancellation, and the caller must not wait for it.
private func race<T: Sendable>(
  after seconds: Double, _ work: @escaping @Sendable () async throws -> T,
  expiry: @escaping @Sendable () -> RemoteError?
) async throws -> T {
  let outcome = Outcome<T>()
  return try await withTaskCancellationHandler {
    try await withCheckedThrowingContinuation { continuation in
      outcome.set(continuation)
      let worker = Task { outcome.finish(await Result(catching: work)) }
      let timer = Task {
        try? await Task.sleep(for: .seconds(seconds))
        guard !Task.isCancelled, let error = expiry() else { return }
        worker.cancel()
        outcome.finish(.failure(error))
      }
      outcome.onFinish {
        worker.cancel()
        timer.cancel()
      }
    }
  } onCancel: {
    outcome.finish(.failure(CancellationError()))
  }
}

/// One result, delivered once, whichever side comes first.
private final class Outcome<T: Sendable>: Sendable {
  private struct State {
    var continuation: CheckedContinuation<T, any Error>?
    var early: Result<T, any Error>?
    var finished = false
    var cleanup: (@Sendable () -> Void)?
  }
  private let state = Mutex(State())

  func set(_ continuation: CheckedContinuation<T, any Error>) {
    let early = state.withLock { state -> Result<T, any Error>? in
      if let early = state.early { return early }
      state.continuation = continuation
      return nil
    }
    if let early { continuation.resume(with: early) }
  }

  func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
    let done = state.withLock { state in
      if state.finished { return true }
      state.cleanup = cleanup
      return false
    }
    if done { cleanup() }
  }

  func finish(_ result: Result<T, any Error>) {
    let (continuation, cleanup) = state.withLock {
      state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
      guard !state.finished else { return (nil, nil) }
      state.finished = true
      if state.continuation == nil { state.early = result }
      defer { state.continuation = nil }
      return (state.continuation, state.cleanup)
    }
    continuation?.resume(with: result)
    cleanup?()
  }
}

extension Result where Failure == any Error {
  fileprivate init(catching body: () async throws -> Success) async {
    do { self = .success(try await body()) } catch { self = .failure(error) }
  }
}
