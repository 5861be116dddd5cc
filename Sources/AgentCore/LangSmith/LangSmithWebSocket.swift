import Foundation
import HTTPTypes
import HummingbirdWebSocket
import Logging
import NIOCore

/// `/execute/ws`: one command per connection. The client's first text frame is `execute` (or
/// `reconnect`, with `stdout_offset`/`stderr_offset`); the server answers `started{command_id,
/// pid}`, then `stdout`/`stderr{data, offset}` (UTF-8 text, never split inside a character,
/// `offset` the byte offset of `data` in its stream), then `exit{exit_code}` and a close. Errors
/// are `error{error_type, error}` (`CommandTimeout`, `CommandNotFound`, `CommandError`). While a
/// command runs the client may send `input{data}`, `close_stdin` and `kill`. Output bytes that
/// are not UTF-8 go out as U+FFFD, so the SDK's own count of a stream's bytes is off until the
/// next message's `offset` (a reconnect right then may resend or skip a few bytes).
extension LangSmithSandbox {
  static let webSocketPath = "/execute/ws"
  /// Output bytes per message.
  static let messageBytes = 64 << 10

  /// Upgrades `/execute/ws` with a valid key; anything else goes to the router, which answers
  /// 401 for a wrong key and 400 for a plain GET.
  func shouldUpgrade(_ request: HTTPRequest) -> ShouldUpgradeResult<
    WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
  > {
    let path = request.path.map { String($0.prefix { $0 != "?" }) } ?? ""
    guard path == Self.webSocketPath else { return .dontUpgrade }
    if let token = services.accessToken, !token.matches(request.headerFields[langSmithKeyHeader]) {
      return .dontUpgrade
    }
    return .upgrade([:]) { inbound, outbound, context in
      try await self.serveWebSocket(inbound: inbound, outbound: outbound, logger: context.logger)
    }
  }

  private func serveWebSocket(
    inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger
  ) async throws {
    let (attached, attach) = AsyncStream.makeStream(of: (LangSmithCommand, [Int]).self)
    let command = LangSmithAttachment()
    defer { command.release() }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        defer { attach.finish() }
        for try await message in inbound.messages(maxSize: 16 << 20) {
          guard case .text(let text) = message,
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8))
              as? [String: Any],
            let type = object["type"] as? String
          else {
            try await Self.sendError(outbound, "InvalidMessage", "expected a JSON text message")
            continue
          }
          if let running = command.current {
            await self.control(running, type: type, object: object, logger: logger)
            continue
          }
          guard let (started, cursors) = try await self.begin(type, text: text, object, outbound)
          else { return }
          command.hold(started)
          try await Self.send(
            outbound, ["type": "started", "command_id": started.id, "pid": Int(started.pid)])
          attach.yield((started, cursors))
        }
      }
      group.addTask {
        for await (started, cursors) in attached {
          try await Self.pump(started, cursors: cursors, to: outbound)
          return
        }
      }
      // Whichever ends first (the command's exit was sent, or the client went away) ends both.
      try await group.next()
      group.cancelAll()
    }
  }

  /// The first message: the command to attach to and the offsets to send from, or nil after an
  /// error was sent.
  private func begin(
    _ type: String, text: String, _ object: [String: Any], _ outbound: WebSocketOutboundWriter
  ) async throws -> (LangSmithCommand, [Int])? {
    switch type {
    case "execute":
      do {
        let request = try JSONDecoder().decode(LangSmithExecute.self, from: Data(text.utf8))
        let (command, _) = try execute(request, sse: false)
        return (command, [0, 0])
      } catch let error as LangSmithError {
        try await Self.sendError(outbound, error.type, error.message)
      } catch {
        try await Self.sendError(outbound, "InvalidRequest", "invalid execute message: \(error)")
      }
    case "reconnect":
      let id = object["command_id"] as? String ?? ""
      guard let command = commands.find(id) else {
        try await Self.sendError(outbound, "CommandNotFound", "command '\(id)' not found")
        return nil
      }
      let stdout = (object["stdout_offset"] as? Int) ?? 0
      let stderr = (object["stderr_offset"] as? Int) ?? 0
      return (command, [stdout, stderr])
    default:
      try await Self.sendError(
        outbound, "InvalidRequest", "expected 'execute' or 'reconnect', got '\(type)'")
    }
    return nil
  }

  private func control(
    _ command: LangSmithCommand, type: String, object: [String: Any], logger: Logger
  ) async {
    switch type {
    case "input":
      let data = Data(((object["data"] as? String) ?? "").utf8)
      let failure =
        command.process.hasPTY
        ? await command.process.writePTY(data) : await command.process.writeStdin(data)
      if let failure { logger.debug("stdin of command \(command.id): \(failure)") }
    case "close_stdin":
      if !command.process.hasPTY { _ = await command.process.closeStdin() }
    case "kill":
      command.kill()
    default:
      logger.debug("ignored WebSocket message '\(type)' for command \(command.id)")
    }
  }

  /// Sends the command's output from `cursors` (stdout, stderr) until it has ended and all of it
  /// went out, then its exit (or its timeout's error).
  static func pump(
    _ command: LangSmithCommand, cursors start: [Int], to outbound: WebSocketOutboundWriter
  ) async throws {
    var cursors = start
    let reader = command.register(start)
    defer { command.unregister(reader) }
    while true {
      let snapshot = command.snapshot()
      var progressed = false
      for (index, stream) in LangSmithStream.allCases.enumerated() {
        let (offset, bytes) = command.read(stream, from: cursors[index], limit: messageBytes)
        cursors[index] = offset
        guard !bytes.isEmpty else { continue }
        var cut = UTF8Chunks.completePrefix(bytes)
        // The stream's last bytes go out even when they end inside a character.
        if cut == 0 && snapshot.end != nil && bytes.count < messageBytes { cut = bytes.count }
        guard cut > 0 else { continue }
        try await send(
          outbound,
          [
            "type": stream.rawValue, "data": String(decoding: bytes[..<cut], as: UTF8.self),
            "offset": offset,
          ])
        cursors[index] = offset + cut
        progressed = true
      }
      if progressed {
        command.advance(reader, cursors)
        continue
      }
      if let end = snapshot.end {
        switch end {
        case .exit(let code): try await send(outbound, ["type": "exit", "exit_code": Int(code)])
        case .timeout(let seconds):
          try await sendError(
            outbound, "CommandTimeout", "command timed out after \(seconds) seconds")
        }
        return
      }
      await command.waitForChange(after: snapshot.generation)
      try Task.checkCancellation()
    }
  }

  static func send(_ outbound: WebSocketOutboundWriter, _ object: [String: Any]) async throws {
    try await outbound.write(.text(String(decoding: langSmithEncode(object), as: UTF8.self)))
  }

  static func sendError(_ outbound: WebSocketOutboundWriter, _ type: String, _ message: String)
    async throws
  {
    try await send(outbound, ["type": "error", "error_type": type, "error": message])
  }
}

/// The command one connection is attached to; counted as attached until the connection ends.
final class LangSmithAttachment: @unchecked Sendable {
  private let lock = NSLock()
  private var command: LangSmithCommand?

  var current: LangSmithCommand? { lock.withLock { command } }

  func hold(_ command: LangSmithCommand) {
    command.attach()
    lock.withLock { self.command = command }
  }

  func release() {
    lock.withLock { command }?.detach()
  }
}
