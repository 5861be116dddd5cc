import Foundation
import Glibc
import Synchronization

/// The session's commands by id, kept after they end (their logs and exit codes stay readable).
/// A mount runs a command per file operation, so ended ones are let go: after
/// `finishedRetention`, or sooner, once more than `finishedLimit` have ended (never within
/// `minimumRetention` of their end, which is when the SDK reads a helper's logs).
final class VercelCommandTable: Sendable {
  static let finishedRetention = Duration.seconds(300)
  static let finishedLimit = 256
  static let minimumRetention = Duration.seconds(10)

  private let commands = Mutex<[String: VercelCommand]>([:])
  private let order = Mutex<[String]>([])
  /// The envd process machinery's table; commands are found by id here, not by pid.
  let processes = ProcessTable()

  func insert(_ command: VercelCommand) {
    prune()
    commands.withLock { $0[command.id] = command }
    order.withLock { $0.append(command.id) }
  }

  private func prune() {
    let now = ContinuousClock.now
    let finished = all.compactMap { command in command.ended.map { (command.id, $0) } }
      .sorted { $0.1 < $1.1 }
    var dropped = Set<String>()
    for (index, (id, ended)) in finished.enumerated() {
      let overLimit = finished.count - index > Self.finishedLimit
      if now - ended > Self.finishedRetention
        || (overLimit && now - ended > Self.minimumRetention)
      {
        dropped.insert(id)
      }
    }
    guard !dropped.isEmpty else { return }
    commands.withLock { table in for id in dropped { table[id] = nil } }
    order.withLock { $0.removeAll { dropped.contains($0) } }
  }

  func find(_ id: String) throws(VercelError) -> VercelCommand {
    guard let command = commands.withLock({ $0[id] }) else {
      throw VercelError(404, "command_not_found", "command '\(id)' not found")
    }
    return command
  }

  var all: [VercelCommand] {
    let ids = order.withLock { $0 }
    return commands.withLock { table in ids.compactMap { table[$0] } }
  }

  func killAll() {
    for command in all where command.exit == nil { _ = command.process.signal(SIGKILL) }
  }

  static func newID() -> String {
    "cmd_" + (0..<24).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
  }
}

/// `POST …/cmd`'s body.
struct VercelCommandRequest: Decodable, Sendable {
  var command: String
  var args: [String]?
  var cwd: String?
  var env: [String: String]?
  var sudo: Bool?
  var wait: Bool?
  /// Kill the command after this many milliseconds.
  var timeout: Int?
  var attachStdin: Bool?
}

extension VercelSandbox {
  /// Starts a command as envd mode does (a host process run through `/bin/sh -c 'exec "$@"'`,
  /// as the agent's default user, `SANDBOX_ROOT` set), in a working directory inside the root.
  /// `sudo` changes nothing: the agent's user is the only one.
  func start(_ request: VercelCommandRequest) throws(VercelError) -> VercelCommand {
    guard !request.command.isEmpty else { throw .badRequest("command must not be empty") }
    let directory = try Self.resolve(Self.resolveDirectory(request.cwd), cwd: nil)
    var config = ProcessConfig()
    config.cmd = request.command
    config.args = request.args ?? []
    config.envs = request.env ?? [:]
    config.cwd = directory.cleaned
    let start = StartRequest(process: config, stdin: request.attachStdin ?? false)
    let launcher = ProcessLauncher(jail: services.jail)
    let (process, subscription): (ManagedProcess, OutputSubscription)
    do {
      (process, subscription) = try launcher.launch(
        start, user: services.users.defaultUser, table: commands.processes)
    } catch {
      let status = error.message.contains("does not exist") ? 404 : 400
      throw VercelError(status, status == 404 ? "not_found" : "bad_request", error.message)
    }
    if let timeout = request.timeout, timeout > 0 { process.killAfter(.milliseconds(timeout)) }
    let command = VercelCommand(
      id: VercelCommandTable.newID(), name: request.command, args: request.args ?? [],
      cwd: directory.cleaned, sessionID: sessionID, attachStdin: request.attachStdin ?? false,
      process: process)
    command.collect(subscription)
    commands.insert(command)
    return command
  }
}

extension StartRequest {
  init(process: ProcessConfig, stdin: Bool) {
    self.process = process
    self.pty = nil
    self.tag = nil
    self.stdin = stdin
  }
}
