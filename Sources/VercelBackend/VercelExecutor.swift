import Backend
import ExecLayer
import Foundation
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Commands through Vercel's `POST …/cmd`. Without stdin: one request with `wait: true`, whose
/// NDJSON answer is the command, its output records and the command again with its exit code.
/// With stdin (`attachStdin`): the command starts, its stdin goes in base64 chunks with offsets,
/// then its logs and exit code are fetched. Output is text (JSON strings), so the exec layer
/// sends binary output base64.
struct VercelExecutor: ProcessExecutor {
  let client: VercelClient

  var binarySafeOutput: Bool { false }

  /// The SDK's largest stdin chunk, before base64.
  static let stdinChunk = 512 << 10

  struct Start: Encodable, Equatable {
    var command: String
    var args: [String]
    var cwd: String
    var env: [String: String]
    var sudo: Bool
    var wait: Bool
    var attachStdin: Bool
    var timeout: Int?
  }

  /// `POST …/cmd`'s body: waiting for the NDJSON answer unless stdin is to be sent.
  static func start(_ command: ProcessCommand, sudo: Bool) -> Start {
    let withStdin = !command.standardInput.isEmpty
    return Start(
      command: command.executable, args: command.arguments, cwd: command.workingDirectory,
      env: command.environment, sudo: sudo, wait: !withStdin, attachStdin: withStdin,
      timeout: command.timeout.map { Int($0 * 1000) })
  }

  private struct Stdin: Encodable {
    var data: String
    var offset: Int
    var close: Bool
  }

  func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
    let context = "command \(command.executable)"
    let withStdin = !command.standardInput.isEmpty
    let start = Self.start(command, sudo: client.configuration.sudo)
    // The server kills a command at its timeout; the request waits a little longer for that.
    let deadline = (command.timeout ?? client.configuration.requestTimeout) + 10
    // Output arrives as JSON strings: room for their escapes.
    let limit = command.outputLimit * 2 + (64 << 10)
    guard withStdin else {
      let response = try await client.postJSON(
        "cmd", start, idempotent: false, deadline: deadline, limit: limit, context: context)
      if response.limitReached { throw tooMuchOutput(context) }
      let outcome = try Self.outcome(response.body, limit: command.outputLimit, context: context)
      guard outcome.exitCode != nil else {
        throw RemoteError(errno: EIO, "\(context): the answer ended without the exit code")
      }
      return outcome
    }
    let started = try await client.postJSON(
      "cmd", start, idempotent: false, context: context)
    guard let id = Self.commandID(started.body) else {
      throw RemoteError(errno: EIO, "\(context): the answer names no command")
    }
    let logs: HTTPResponse
    let finished: HTTPResponse
    do {
      try await sendStdin(command.standardInput, to: id, context: context)
      logs = try await client.get(
        "cmd/\(VercelClient.encode(id))/logs", deadline: deadline, context: context)
      finished = try await client.get(
        "cmd/\(VercelClient.encode(id))", [("wait", "true")], deadline: deadline,
        context: context)
    } catch {
      // Not left waiting for the rest of its stdin.
      _ = try? await client.postJSON(
        "cmd/\(VercelClient.encode(id))/kill", ["signal": 9], idempotent: true, context: context)
      throw error
    }
    var outcome = try Self.outcome(logs.body, limit: command.outputLimit, context: context)
    outcome.exitCode = Self.exitCode(finished.body)
    outcome.status = outcome.exitCode.map { "exit code \($0)" } ?? "no exit code"
    return outcome
  }

  private func sendStdin(_ bytes: [UInt8], to id: String, context: String) async throws {
    var offset = 0
    repeat {
      let end = min(bytes.count, offset + Self.stdinChunk)
      let chunk = Stdin(
        data: Data(bytes[offset..<end]).base64EncodedString(), offset: offset,
        close: end == bytes.count)
      do {
        _ = try await client.postJSON(
          "cmd/\(VercelClient.encode(id))/stdin", chunk, idempotent: true, context: context)
      } catch let error as RemoteError where error.errno != EIO {
        // The command ended before it read everything: its outcome tells.
        return
      }
      offset = end
    } while offset < bytes.count
  }

  private func tooMuchOutput(_ context: String) -> RemoteError {
    RemoteError(errno: EIO, "\(context): more output than the command may print")
  }

  // MARK: NDJSON

  private struct Line: Decodable {
    struct Command: Decodable {
      var id: String?
      var exitCode: Int32?
    }
    enum Payload: Decodable {
      case text(String)
      case error(code: String?, message: String?)

      private struct Failure: Decodable {
        var code: String?
        var message: String?
      }

      init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
          self = .text(text)
        } else {
          let failure = try container.decode(Failure.self)
          self = .error(code: failure.code, message: failure.message)
        }
      }
    }
    var command: Command?
    var stream: String?
    var data: Payload?
  }

  private struct CommandAnswer: Decodable {
    var command: Line.Command?
  }

  static func commandID(_ body: [UInt8]) -> String? {
    (try? JSONDecoder().decode(CommandAnswer.self, from: Data(body)))?.command?.id
  }

  static func exitCode(_ body: [UInt8]) -> Int32? {
    (try? JSONDecoder().decode(CommandAnswer.self, from: Data(body)))?.command?.exitCode
  }

  /// The output and exit code an NDJSON answer carries (the last `{command}` with `exitCode`).
  static func outcome(_ body: [UInt8], limit: Int, context: String) throws -> ProcessOutcome {
    var outcome = ProcessOutcome()
    let decoder = JSONDecoder()
    for line in body.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
      guard let record = try? decoder.decode(Line.self, from: Data(line)) else {
        throw RemoteError(
          errno: EIO,
          "\(context): unreadable output record: \(String(decoding: line.prefix(200), as: UTF8.self))"
        )
      }
      if let command = record.command, let code = command.exitCode { outcome.exitCode = code }
      switch (record.stream, record.data) {
      case ("stdout", .text(let text)?): outcome.stdout += Array(text.utf8)
      case ("stderr", .text(let text)?): outcome.stderr += Array(text.utf8)
      case ("error", .error(let code, let message)?):
        throw RemoteError(
          errno: EIO,
          "\(context): the sandbox broke off the command (\(code ?? "error"): \(message ?? ""))",
          kind: .failure)
      default: break
      }
      if outcome.stdout.count + outcome.stderr.count > limit {
        throw RemoteError(errno: EIO, "\(context): more output than the command may print")
      }
    }
    outcome.status = outcome.exitCode.map { "exit code \($0)" } ?? "no exit code"
    return outcome
  }
}
