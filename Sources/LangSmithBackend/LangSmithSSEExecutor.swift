import Backend
import CCurl
import ExecLayer
import Foundation
import HTTPTransport

/// Commands through LangSmith's SSE transport: `POST /execute/stream/start` runs the argv as
/// one shell line and answers `started`, `stdout`/`stderr{data: base64, offset}`,
/// `stream_end` and `exit{exit_code}` (or `error{error_type, error}`). Output is base64 with
/// byte offsets, so the channel is binary-safe. A stream that breaks off before the end is
/// resumed by offset (`/execute/stream/resume` with the client-chosen `command_id`): bytes
/// already held are skipped, none are lost. SSE has no stdin, so stdin goes base64 in the
/// command line (small inputs only: the exec layer sends none but ExecOnlyFilesystem's uploads).
struct LangSmithSSEExecutor: ProcessExecutor {
  let client: LangSmithClient

  var binarySafeOutput: Bool { true }

  /// The most stdin carried in the command line (well under Linux's 128 KiB per argument).
  static let largestStandardInput = 64 << 10

  struct Start: Encodable {
    var command: String
    var command_id: String
    var timeout_seconds: Int
    var shell: String
    var env: [String: String]
    var cwd: String
    var kill_on_disconnect: Bool
    var ttl_seconds: Int
  }

  struct Resume: Encodable {
    var command_id: String
    var stdout_offset: Int
    var stderr_offset: Int
  }

  static func start(_ command: ProcessCommand, id: String, defaultTimeout: Double) throws -> Start {
    var line = command.shellLine
    if !command.standardInput.isEmpty {
      guard command.standardInput.count <= largestStandardInput else {
        throw RemoteError(
          errno: EFBIG,
          "command \(command.executable): \(command.standardInput.count) bytes of stdin; LangSmith's SSE commands carry at most \(largestStandardInput)"
        )
      }
      let encoded = Data(command.standardInput).base64EncodedString()
      line = "printf %s '\(encoded)' | base64 -d | \(line)"
    }
    return Start(
      command: line, command_id: id,
      timeout_seconds: Int((command.timeout ?? defaultTimeout).rounded(.up)), shell: "/bin/sh",
      env: command.environment, cwd: command.workingDirectory, kill_on_disconnect: false,
      ttl_seconds: 120)
  }

  func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
    let context = "command \(command.executable)"
    let id = UUID().uuidString.lowercased()
    let start = try Self.start(
      command, id: id, defaultTimeout: client.configuration.requestTimeout)
    // The server kills a command at its timeout; the stream waits a little longer for that.
    let deadline = Double(start.timeout_seconds) + 10
    // base64 output, inside SSE frames.
    let limit = command.outputLimit / 3 * 4 + command.outputLimit / 4 + (64 << 10)
    var stream = EventStream(outputLimit: command.outputLimit)
    var resumes = 0
    var body = try Array(LangSmithClient.encoder.encode(start))
    var route = "execute/stream/start"
    while true {
      let url = client.dataplaneURL(route)
      let sent = body
      // Idempotent by `command_id`: a retry reattaches to the command, never runs it twice.
      let response = try await client.http.send(idempotent: true) {
        HTTPRequest(
          method: .post, url: url,
          headers: ["Content-Type: application/json", "Accept: text/event-stream"],
          body: .bytes(sent), sink: .memory(expected: 0, limit: limit), deadline: deadline)
      }
      if response.limitReached {
        throw RemoteError(errno: EIO, "\(context): more output than the command may print")
      }
      let broken = response.curlCode != CURLE_OK.rawValue
      if !broken || !response.isSuccessStatus {
        try client.check(response, context: context)
      }
      try stream.consume(response.body, context: context)
      if let outcome = try stream.outcome(context: context) { return outcome }
      // Cut before its end (a proxy's timeout, a server reload): resumed where it stopped.
      guard resumes < client.configuration.streamResumes else {
        throw RemoteError(
          errno: EIO,
          "\(context): the output stream broke off \(resumes + 1) times before the exit code (\(client.http.describeFailure(response)))"
        )
      }
      resumes += 1
      route = "execute/stream/resume"
      body = try Array(
        LangSmithClient.encoder.encode(
          Resume(
            command_id: id, stdout_offset: stream.stdout.count,
            stderr_offset: stream.stderr.count)))
    }
  }
}

/// The events of one command's SSE answers, joined by offset.
struct EventStream {
  var stdout: [UInt8] = []
  var stderr: [UInt8] = []
  var exitCode: Int32?
  var failure: (type: String, message: String)?
  let outputLimit: Int

  init(outputLimit: Int) {
    self.outputLimit = outputLimit
  }

  private struct Payload: Decodable {
    var data: String?
    var offset: Int?
    var exit_code: Int32?
    var error_type: String?
    var error: String?
  }

  /// Reads the complete events of one answer (a trailing partial event is dropped: the resume
  /// sends it again).
  mutating func consume(_ body: [UInt8], context: String) throws {
    let text = String(decoding: body, as: UTF8.self)
    let blocks = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n")
    // The last block is complete only when the answer ended with its blank line.
    for block in blocks.dropLast() {
      var name = "message"
      var data = ""
      for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
        if line.hasPrefix(":") { continue }
        if line.hasPrefix("event:") {
          name = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
        } else if line.hasPrefix("data:") {
          var value = line.dropFirst(5)
          if value.first == " " { value = value.dropFirst() }
          data += data.isEmpty ? String(value) : "\n" + value
        }
      }
      guard !data.isEmpty else { continue }
      guard let payload = try? JSONDecoder().decode(Payload.self, from: Data(data.utf8)) else {
        throw RemoteError(
          errno: EIO, "\(context): unreadable event \(name): \(String(data.prefix(200)))")
      }
      var bytes = Data()
      if let encoded = payload.data {
        guard let decoded = Data(base64Encoded: encoded) else {
          throw RemoteError(errno: EIO, "\(context): output that is not base64")
        }
        bytes = decoded
      }
      try receive(
        name, bytes: bytes, offset: payload.offset, exitCode: payload.exit_code,
        failure: payload.error_type.map { ($0, payload.error ?? "") }, context: context)
    }
  }

  /// One event of either transport, its output already decoded.
  mutating func receive(
    _ name: String, bytes: Data, offset: Int?, exitCode: Int32?,
    failure: (String, String)?, context: String
  ) throws {
    switch name {
    case "stdout":
      stdout += try Self.unseen(bytes, offset: offset, held: stdout.count, context: context)
    case "stderr":
      stderr += try Self.unseen(bytes, offset: offset, held: stderr.count, context: context)
    case "exit": self.exitCode = exitCode
    case "error": self.failure = failure ?? ("error", "")
    default: break
    }
    if stdout.count + stderr.count > outputLimit {
      throw RemoteError(errno: EIO, "\(context): more output than the command may print")
    }
  }

  /// The bytes of an output event past the `held` ones; a gap (the server's ring dropped
  /// them) is EIO.
  private static func unseen(_ bytes: Data, offset: Int?, held: Int, context: String) throws
    -> Data
  {
    let offset = offset ?? held
    guard offset <= held else {
      throw RemoteError(errno: EIO, "\(context): output from \(held) to \(offset) was lost")
    }
    return bytes.dropFirst(held - offset)
  }

  /// The outcome once the command ended; nil while the stream has not said how.
  func outcome(context: String) throws -> ProcessOutcome? {
    if let failure {
      let message = "\(context): \(failure.type): \(failure.message)"
      if failure.type == "CommandTimeout" {
        throw RemoteError(errno: ETIMEDOUT, message)
      }
      throw RemoteError(errno: EIO, message, kind: .failure)
    }
    guard let exitCode else { return nil }
    return ProcessOutcome(
      stdout: stdout, stderr: stderr, exitCode: exitCode, status: "exit code \(exitCode)")
  }
}
