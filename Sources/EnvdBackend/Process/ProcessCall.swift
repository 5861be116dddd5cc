import Backend
import ExecLayer
import HTTPTransport

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// `process.Process/Start` (protocol doc §7) as one server-streaming Connect call: one request
/// envelope, the response's envelopes collected whole (fallback commands print little).
enum ProcessCall {
  struct Request: Encodable {
    struct Process: Encodable {
      var cmd: String
      var args: [String]
      var envs: [String: String]
      var cwd: String
    }
    var process: Process
    var stdin = false
  }

  struct Event: Decodable {
    struct Output: Decodable {
      var stdout: String?
      var stderr: String?
    }
    struct End: Decodable {
      var exitCode: Int32?
      var exited: Bool?
      var status: String?
      var error: String?
    }
    var data: Output?
    var end: End?
  }

  struct Message: Decodable { var event: Event? }

  struct EndStream: Decodable {
    struct Failure: Decodable {
      var code: String?
      var message: String?
    }
    var error: Failure?
  }

  /// The request body: one envelope (flags 0, big-endian length, JSON).
  static func envelope(_ request: Request) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let json = try Array(encoder.encode(request))
    let length = UInt32(json.count)
    return [
      0, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF),
      UInt8(length & 0xFF),
    ] + json
  }

  /// Parses the response's envelopes. Throws the end-stream error (mapped to errno) or EIO for
  /// a malformed stream.
  static func outcome(of body: [UInt8], context: String) throws -> ProcessOutcome {
    var outcome = ProcessOutcome()
    var position = 0
    var ended = false
    while position + 5 <= body.count {
      let flags = body[position]
      let length =
        Int(body[position + 1]) << 24 | Int(body[position + 2]) << 16 | Int(body[position + 3]) << 8
        | Int(body[position + 4])
      let start = position + 5
      guard start + length <= body.count else { break }
      let json = Array(body[start..<(start + length)])
      position = start + length
      if flags & 0x02 != 0 {
        let end = try? decodeJSON(EndStream.self, json)
        if let failure = end?.error {
          let code = failure.code ?? "unknown"
          let message = failure.message ?? ""
          throw RemoteError(
            errno: EnvdErrorMapping.errno(connectCode: code, message: message),
            "\(context): \(message) [\(code)]")
        }
        ended = true
        break
      }
      guard let event = try? decodeJSON(Message.self, json).event else { continue }
      if let data = event.data {
        if let text = data.stdout, let bytes = Data(base64Encoded: text) {
          outcome.stdout += bytes
        }
        if let text = data.stderr, let bytes = Data(base64Encoded: text) {
          outcome.stderr += bytes
        }
      }
      if let end = event.end {
        outcome.exitCode = end.exited == false ? nil : (end.exitCode ?? 0)
        outcome.status = end.status ?? end.error ?? ""
      }
    }
    guard ended else { throw RemoteError(errno: EIO, "\(context): the process stream broke off") }
    return outcome
  }
}

/// envd's `Process/Start` as the exec layer's executor.
struct EnvdProcessExecutor: ProcessExecutor {
  let client: EnvdClient

  func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
    guard command.standardInput.isEmpty else {
      throw RemoteError(errno: EOPNOTSUPP, "envd's executor sends no stdin")
    }
    return try await client.runProcess(command, context: "process \(command.executable)")
  }
}

extension EnvdClient {
  /// Runs `command` and waits for it to end; it is killed after its timeout (else the request
  /// timeout).
  func runProcess(_ command: ProcessCommand, context: String) async throws -> ProcessOutcome {
    let request = ProcessCall.Request(
      process: .init(
        cmd: command.executable, args: command.arguments, envs: command.environment,
        cwd: command.workingDirectory))
    let timeout = command.timeout ?? configuration.requestTimeout
    let response = try await post(
      route: "/process.Process/Start",
      HTTPRequest(
        method: .post, url: "",
        headers: [
          "Content-Type: application/connect+json", "Connect-Protocol-Version: 1",
          "Connect-Timeout-Ms: \(Int(timeout * 1000))",
        ],
        body: .bytes(try ProcessCall.envelope(request)),
        sink: .memory(expected: 4096, limit: command.outputLimit), deadline: timeout + 5))
    if let failure = transportError(response, context: context) { throw failure }
    guard response.status == 200 else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
    return try ProcessCall.outcome(of: response.body, context: context)
  }
}
