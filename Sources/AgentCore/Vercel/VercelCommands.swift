import Foundation
import Glibc
import Synchronization

/// One line of a command's log, as Vercel's NDJSON carries it: output is text (JSON strings),
/// decoded as UTF-8 with invalid bytes replaced.
struct VercelLogRecord: Sendable {
  var stream: String
  var data: String

  var json: [String: Any] { ["stream": stream, "data": data] }
}

/// A command started by `POST …/cmd`. Its whole output is kept, because Vercel's logs endpoint
/// replays a command's output from the beginning on every call (the SDK's file helpers read
/// the logs only after the command has ended).
final class VercelCommand: @unchecked Sendable {
  let id: String
  let name: String
  let args: [String]
  let cwd: String
  let sessionID: String
  let startedAt: Int64
  let attachStdin: Bool
  let process: ManagedProcess

  private let lock = NSLock()
  private var records: [VercelLogRecord] = []
  private var exitCode: Int32?
  private var endedAt: ContinuousClock.Instant?
  private var waiters: [UUID: @Sendable () -> Void] = [:]
  private var decoders = ["stdout": UTF8Chunks(), "stderr": UTF8Chunks()]
  /// Bytes of stdin the process has been given, for the offsets of `…/stdin`.
  private var stdinWritten = 0
  private var stdinClosed = false
  private var stdinBusy = false

  init(
    id: String, name: String, args: [String], cwd: String, sessionID: String, attachStdin: Bool,
    process: ManagedProcess
  ) {
    self.id = id
    self.name = name
    self.args = args
    self.cwd = cwd
    self.sessionID = sessionID
    self.startedAt = VercelSandbox.nowMilliseconds()
    self.attachStdin = attachStdin
    self.process = process
  }

  /// Reads the process's events until it ends; each chunk is released at once, so output never
  /// waits for an HTTP client.
  func collect(_ subscription: OutputSubscription) {
    Task.detached {
      for await event in subscription.events {
        switch event {
        case .stdout(let bytes):
          self.append("stdout", bytes)
          subscription.gate.leave()
        case .stderr(let bytes):
          self.append("stderr", bytes)
          subscription.gate.leave()
        case .pty(let bytes):
          self.append("stdout", bytes)
          subscription.gate.leave()
        case .end(let exit):
          self.finish(Self.exitCode(exit))
        case .start, .keepalive:
          break
        }
      }
    }
  }

  /// A signal's death is reported as a shell does, 128 + the signal's number.
  static func exitCode(_ exit: ProcessExit) -> Int32 {
    if exit.exited { return exit.exitCode }
    let name = exit.status.dropFirst("signal: ".count).replacingOccurrences(
      of: " (core dumped)", with: "")
    let number = (1...31).first { ProcessExit.signalName(Int32($0)) == name } ?? 9
    return 128 + Int32(number)
  }

  private func append(_ stream: String, _ bytes: Data) {
    let woken = lock.withLock { () -> [@Sendable () -> Void] in
      let text = decoders[stream]!.decode(bytes)
      if !text.isEmpty { records.append(VercelLogRecord(stream: stream, data: text)) }
      defer { waiters = [:] }
      return Array(waiters.values)
    }
    for waiter in woken { waiter() }
  }

  private func finish(_ code: Int32) {
    let woken = lock.withLock { () -> [@Sendable () -> Void] in
      for stream in ["stdout", "stderr"] {
        let rest = decoders[stream]!.flush()
        if !rest.isEmpty { records.append(VercelLogRecord(stream: stream, data: rest)) }
      }
      exitCode = code
      endedAt = .now
      stdinClosed = true
      defer { waiters = [:] }
      return Array(waiters.values)
    }
    for waiter in woken { waiter() }
  }

  var exit: Int32? { lock.withLock { exitCode } }
  var ended: ContinuousClock.Instant? { lock.withLock { endedAt } }

  /// Log records from `index` on, waiting for at least one unless the command has ended.
  /// `ended` is true once no record will follow the ones returned.
  func records(from index: Int) async -> (records: [VercelLogRecord], ended: Bool) {
    while true {
      let found = lock.withLock { () -> ([VercelLogRecord], Bool)? in
        guard index < records.count || exitCode != nil else { return nil }
        return (Array(records[min(index, records.count)...]), exitCode != nil)
      }
      if let found { return found }
      if Task.isCancelled { return ([], true) }
      let key = UUID()
      await withTaskCancellationHandler {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
          let now = lock.withLock { () -> Bool in
            if index < records.count || exitCode != nil || Task.isCancelled { return true }
            waiters[key] = { waiter.resume() }
            return false
          }
          if now { waiter.resume() }
        }
      } onCancel: {
        let waiter = lock.withLock { waiters.removeValue(forKey: key) }
        waiter?()
      }
    }
  }

  /// Waits for the exit code.
  func waitForExit() async -> Int32? {
    var index = 0
    while true {
      let (more, ended) = await records(from: index)
      index += more.count
      if ended { return exit }
      if Task.isCancelled { return nil }
    }
  }

  var json: [String: Any] {
    [
      "id": id, "name": name, "args": args, "cwd": cwd, "sessionId": sessionID,
      "exitCode": exit.map { Int($0) as Any } ?? NSNull(), "startedAt": startedAt,
    ]
  }

  /// The command as it started: a stream's first record, whose `exitCode` is null even when the
  /// command has already ended by the time it is written (the final record carries the code).
  var startedJSON: [String: Any] {
    var json = json
    json["exitCode"] = NSNull()
    return json
  }

  // MARK: stdin

  private func claimStdin(data: Data, offset: Int?, close: Bool) throws(VercelError) -> Int {
    lock.lock()
    defer { lock.unlock() }
    guard attachStdin else {
      throw VercelError(
        400, "command_stdin_unavailable", "the command was not started with attachStdin")
    }
    if stdinClosed && (!data.isEmpty || close) {
      throw VercelError(400, "command_stdin_unavailable", "the command's stdin is closed")
    }
    guard !stdinBusy else {
      throw VercelError(409, "stdin_busy", "another stdin request is in progress")
    }
    let offset = offset ?? stdinWritten
    guard offset <= stdinWritten else {
      throw VercelError.badRequest(
        "offset \(offset) is past the \(stdinWritten) bytes written so far")
    }
    stdinBusy = true
    return offset
  }

  /// Writes `data` (the bytes from `offset` on; bytes the process already has are skipped, so a
  /// resent request is harmless), then closes stdin if asked. Returns the bytes written so far.
  func writeStdin(_ data: Data, offset: Int?, close: Bool) async throws(VercelError) -> Int {
    let start = try claimStdin(data: data, offset: offset, close: close)
    defer { lock.withLock { stdinBusy = false } }
    let already = lock.withLock { stdinWritten }
    let skip = already - start
    if skip < data.count {
      let fresh = data.dropFirst(skip)
      if let failure = await process.writeStdin(Data(fresh)) {
        throw VercelError(400, "command_stdin_unavailable", failure)
      }
      lock.withLock { stdinWritten += fresh.count }
    }
    if close {
      _ = await process.closeStdin()
      lock.withLock { stdinClosed = true }
    }
    return lock.withLock { stdinWritten }
  }
}
