import Foundation
import Hummingbird
import NIOCore

/// `POST /execute/stream/resume`'s body.
struct LangSmithResume: Decodable, Sendable {
  var command_id: String
  var stdout_offset: Int?
  var stderr_offset: Int?
}

/// The SSE transport: `POST /execute/stream/start` (the execute body, without a WebSocket) and
/// `POST /execute/stream/resume` answer `text/event-stream`: `started{command_id, pid}`, then
/// `stdout`/`stderr{data: base64, offset}`, `stream_end{stream, offset}` for each stream, and
/// `exit{exit_code}` (or `error{error_type, error}`), with a `:` comment every 15 s of silence.
/// While a response streams, the command's output waits for it, so `ack_required` is never
/// sent; between responses the ring keeps the last 4 MiB. Stdin is closed at spawn (SSE has no
/// way to send more).
extension LangSmithSandbox {
  static let heartbeat = Duration.seconds(15)

  func startStream(_ request: Request) async throws -> Response {
    let body = try await decodeLangSmithBody(LangSmithExecute.self, request)
    let (command, _) = try execute(body, sse: true)
    return eventStream(command, cursors: [0, 0])
  }

  func resumeStream(_ request: Request) async throws -> Response {
    let body = try await decodeLangSmithBody(LangSmithResume.self, request)
    guard let command = commands.find(body.command_id) else {
      throw LangSmithError(404, "CommandNotFound", "command '\(body.command_id)' not found")
    }
    return eventStream(command, cursors: [body.stdout_offset ?? 0, body.stderr_offset ?? 0])
  }

  private func eventStream(_ command: LangSmithCommand, cursors start: [Int]) -> Response {
    command.attach()
    let body = ResponseBody { writer in
      defer { command.detach() }
      func event(_ name: String, _ object: [String: Any]) -> ByteBuffer {
        var text = "event: \(name)\ndata: "
        text += String(decoding: langSmithEncode(object), as: UTF8.self)
        text += "\n\n"
        return ByteBuffer(string: text)
      }
      try await writer.write(event("started", ["command_id": command.id, "pid": Int(command.pid)]))
      var cursors = start
      let reader = command.register(start)
      defer { command.unregister(reader) }
      var ended = [false, false]
      while true {
        let snapshot = command.snapshot()
        var batch = ByteBuffer()
        for (index, stream) in LangSmithStream.allCases.enumerated() {
          while true {
            let (offset, bytes) = command.read(
              stream, from: cursors[index], limit: Self.messageBytes)
            cursors[index] = offset + bytes.count
            guard !bytes.isEmpty else { break }
            var one = event(
              stream.rawValue, ["data": Data(bytes).base64EncodedString(), "offset": offset])
            batch.writeBuffer(&one)
          }
          if snapshot.end != nil && !ended[index] {
            ended[index] = true
            var one = event("stream_end", ["stream": stream.rawValue, "offset": cursors[index]])
            batch.writeBuffer(&one)
          }
        }
        if batch.readableBytes > 0 {
          try await writer.write(batch)
          command.advance(reader, cursors)
        }
        if let end = snapshot.end {
          switch end {
          case .exit(let code): try await writer.write(event("exit", ["exit_code": Int(code)]))
          case .timeout(let seconds):
            try await writer.write(
              event(
                "error",
                [
                  "error_type": "CommandTimeout",
                  "error": "command timed out after \(seconds) seconds",
                ]))
          }
          break
        }
        if batch.readableBytes == 0 {
          await command.waitForChange(after: snapshot.generation, timeout: Self.heartbeat)
          if command.snapshot().generation == snapshot.generation {
            try await writer.write(ByteBuffer(string: ": keepalive\n\n"))
          }
        }
        try Task.checkCancellation()
      }
      try await writer.finish(nil)
    }
    return Response(
      status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
      body: body)
  }
}
