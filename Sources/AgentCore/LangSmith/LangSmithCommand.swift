import Foundation
import Glibc
import Synchronization

/// One output stream's most recent bytes, addressed by their offset in the whole stream. Older
/// bytes are dropped once `capacity` is exceeded (never ones an attached reader still has to
/// send, see `LangSmithCommand.waitForRoom`); a reader asking for them gets the earliest kept.
struct OutputRing: Sendable {
  static let capacity = 4 << 20

  private(set) var bytes: [UInt8] = []
  /// Offset of `bytes[0]` in the stream.
  private(set) var base = 0
  var total: Int { base + bytes.count }

  mutating func append(_ data: Data) {
    bytes.append(contentsOf: data)
    // Dropped in batches, so appends stay cheap.
    if bytes.count > Self.capacity + Self.capacity / 4 {
      let drop = bytes.count - Self.capacity
      bytes.removeFirst(drop)
      base += drop
    }
  }

  /// Bytes from `offset` on (at most `limit`), and the offset they start at.
  func read(from offset: Int, limit: Int) -> (offset: Int, bytes: [UInt8]) {
    let start = min(max(offset, base), total)
    let end = min(total, start + limit)
    return (start, Array(bytes[(start - base)..<(end - base)]))
  }
}

enum LangSmithStream: String, Sendable, CaseIterable {
  case stdout, stderr

  var index: Int { self == .stdout ? 0 : 1 }
}

/// How a command ended, once it has.
enum LangSmithEnd: Sendable {
  case exit(Int32)
  /// Killed by its `timeout_seconds`: the SDK expects an error `CommandTimeout`, not an exit.
  case timeout(Int)
}

/// A command started over the WebSocket or SSE, kept (output ring and end) after its end for
/// `ttl_seconds` so a client can reattach by offset.
final class LangSmithCommand: Sendable {
  let id: String
  let process: ManagedProcess
  let ttl: Duration?
  let idleTimeout: Duration?
  let killOnDisconnect: Bool
  /// The command leads its own process group, which a kill takes down whole.
  let ownGroup: Bool

  private struct State {
    var rings: [LangSmithStream: OutputRing] = [.stdout: OutputRing(), .stderr: OutputRing()]
    var end: LangSmithEnd?
    var endedAt: ContinuousClock.Instant?
    var timedOut: Int?
    var generation = 0
    var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    var attached = 0
    var attachGeneration = 0
    /// Each reader's cursors (stdout, stderr): output they have not sent yet is never dropped.
    var readers: [UUID: [Int]] = [:]
  }
  private let state = Mutex(State())

  init(
    id: String, process: ManagedProcess, ttl: Duration?, idleTimeout: Duration?,
    killOnDisconnect: Bool, ownGroup: Bool
  ) {
    self.ownGroup = ownGroup
    self.id = id
    self.process = process
    self.ttl = ttl
    self.idleTimeout = idleTimeout
    self.killOnDisconnect = killOnDisconnect
  }

  var pid: Int32 { process.pid }

  /// Reads the process's events into the rings until it ends, waiting only for attached readers.
  func collect(_ subscription: OutputSubscription) {
    Task.detached {
      for await event in subscription.events {
        switch event {
        case .stdout(let bytes):
          await self.waitForRoom(.stdout, bytes.count)
          self.append(.stdout, bytes)
          subscription.gate.leave()
        case .stderr(let bytes):
          await self.waitForRoom(.stderr, bytes.count)
          self.append(.stderr, bytes)
          subscription.gate.leave()
        case .pty(let bytes):
          await self.waitForRoom(.stdout, bytes.count)
          self.append(.stdout, bytes)
          subscription.gate.leave()
        case .end(let exit):
          self.finish(VercelCommand.exitCode(exit))
        case .start, .keepalive:
          break
        }
      }
    }
  }

  /// Holds output back while an attached reader has not yet sent what the ring would drop to
  /// make room: the process then blocks on its pipe, as it would on a slow terminal. With no
  /// one attached the oldest bytes are dropped instead.
  private func waitForRoom(_ stream: LangSmithStream, _ count: Int) async {
    let index = stream.index
    while true {
      let (fits, generation) = state.withLock { state -> (Bool, Int) in
        let total = state.rings[stream]!.total
        let fits = state.readers.values.allSatisfy {
          total + count - $0[index] <= OutputRing.capacity
        }
        return (fits, state.generation)
      }
      if fits { return }
      await waitForChange(after: generation)
    }
  }

  /// A reader (a WebSocket or an SSE response) sending from `cursors` (stdout, stderr).
  func register(_ cursors: [Int]) -> UUID {
    let id = UUID()
    state.withLock { state in
      state.readers[id] = LangSmithStream.allCases.map { stream in
        max(cursors[stream.index], state.rings[stream]!.base)
      }
    }
    return id
  }

  /// The reader sent everything before `cursors`.
  func advance(_ id: UUID, _ cursors: [Int]) {
    let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.readers[id] = cursors
      return Self.bump(&state)
    }
    for waiter in woken { waiter.resume() }
  }

  func unregister(_ id: UUID) {
    let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.readers[id] = nil
      return Self.bump(&state)
    }
    for waiter in woken { waiter.resume() }
  }

  private func append(_ stream: LangSmithStream, _ data: Data) {
    let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.rings[stream]!.append(data)
      return Self.bump(&state)
    }
    for waiter in woken { waiter.resume() }
  }

  private func finish(_ code: Int32) {
    let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.end = state.timedOut.map { .timeout($0) } ?? .exit(code)
      state.endedAt = .now
      return Self.bump(&state)
    }
    for waiter in woken { waiter.resume() }
  }

  private static func bump(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
    state.generation += 1
    defer { state.waiters = [:] }
    return Array(state.waiters.values)
  }

  /// What a reader sees at one moment: the change counter, and the end once there is one
  /// (all output is in the rings by then).
  func snapshot() -> (generation: Int, end: LangSmithEnd?) {
    state.withLock { ($0.generation, $0.end) }
  }

  func read(_ stream: LangSmithStream, from offset: Int, limit: Int) -> (
    offset: Int, bytes: [UInt8]
  ) {
    state.withLock { $0.rings[stream]!.read(from: offset, limit: limit) }
  }

  var endedAt: ContinuousClock.Instant? { state.withLock { $0.endedAt } }
  var hasEnded: Bool { state.withLock { $0.end != nil } }

  /// Returns once something changed after `generation`, or after `timeout`, or on cancellation.
  func waitForChange(after generation: Int, timeout: Duration? = nil) async {
    let key = UUID()
    await withTaskCancellationHandler {
      await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
        let now = state.withLock { state -> Bool in
          if state.generation != generation || Task.isCancelled { return true }
          state.waiters[key] = waiter
          return false
        }
        if now { return waiter.resume() }
        if let timeout {
          Task {
            try? await Task.sleep(for: timeout)
            self.state.withLock { $0.waiters.removeValue(forKey: key) }?.resume()
          }
        }
      }
    } onCancel: {
      state.withLock { $0.waiters.removeValue(forKey: key) }?.resume()
    }
  }

  // MARK: Lifetime

  /// Kills the command after `seconds`, reporting it as timed out.
  func limit(seconds: Int) {
    guard seconds > 0 else { return }
    Task.detached { [weak self] in
      try? await Task.sleep(for: .seconds(seconds))
      guard let self else { return }
      let running = self.state.withLock { state -> Bool in
        guard state.end == nil else { return false }
        state.timedOut = seconds
        return true
      }
      if running { self.kill() }
    }
  }

  /// SIGKILL to the command's process group (its children too), or to it alone.
  func kill() {
    if ownGroup && process.isRunning { _ = Glibc.kill(-process.pid, SIGKILL) }
    _ = process.signal(SIGKILL)
  }

  /// A client attached (a WebSocket or an SSE response).
  func attach() {
    state.withLock {
      $0.attached += 1
      $0.attachGeneration += 1
    }
  }

  /// A client went away: with no one left, `kill_on_disconnect` kills the command now, and the
  /// idle timeout kills it unless someone attaches within it.
  func detach() {
    let (alone, generation) = state.withLock { state -> (Bool, Int) in
      state.attached -= 1
      state.attachGeneration += 1
      return (state.attached == 0 && state.end == nil, state.attachGeneration)
    }
    guard alone else { return }
    if killOnDisconnect { return kill() }
    guard let idleTimeout else { return }
    Task.detached { [weak self] in
      try? await Task.sleep(for: idleTimeout)
      guard let self else { return }
      let idle = self.state.withLock {
        $0.attached == 0 && $0.attachGeneration == generation && $0.end == nil
      }
      if idle { self.kill() }
    }
  }
}

/// The box's commands by id. Ended ones are let go after their `ttl_seconds`, or sooner, once
/// more than `finishedLimit` have ended (a mount runs one per operation).
final class LangSmithCommandTable: Sendable {
  static let finishedLimit = 256
  static let minimumRetention = Duration.seconds(10)

  private let commands = Mutex<[String: LangSmithCommand]>([:])
  let processes = ProcessTable()

  func find(_ id: String) -> LangSmithCommand? {
    prune()
    return commands.withLock { $0[id] }
  }

  /// The command under `id`, or the one `make` starts (execute is idempotent by id).
  func findOrStart(
    _ id: String, make: () throws(LangSmithError) -> LangSmithCommand
  ) throws(LangSmithError) -> (LangSmithCommand, created: Bool) {
    prune()
    if let existing = commands.withLock({ $0[id] }) { return (existing, false) }
    let command = try make()
    commands.withLock { $0[id] = command }
    return (command, true)
  }

  private func prune() {
    let now = ContinuousClock.now
    let finished = commands.withLock { table in
      table.values.compactMap { command in command.endedAt.map { (command, $0) } }
    }.sorted { $0.1 < $1.1 }
    var dropped = Set<String>()
    for (index, (command, ended)) in finished.enumerated() {
      let overLimit = finished.count - index > Self.finishedLimit
      let expired = command.ttl.map { now - ended > $0 } ?? false
      if expired || (overLimit && now - ended > Self.minimumRetention) {
        dropped.insert(command.id)
      }
    }
    guard !dropped.isEmpty else { return }
    commands.withLock { table in for id in dropped { table[id] = nil } }
  }

  func killAll() {
    for command in commands.withLock({ Array($0.values) }) where !command.hasEnded {
      command.kill()
    }
  }
}

/// What starts a command, from the WebSocket's `execute` or SSE's `start`.
struct LangSmithExecute: Decodable, Sendable {
  struct RunConfig: Decodable, Sendable {
    var user: String?
    var work_dir: String?
    var env_vars: [String: String]?
  }
  var type: String?
  var command: String
  var command_id: String?
  var timeout_seconds: Int?
  var shell: String?
  var idle_timeout_seconds: Int?
  var kill_on_disconnect: Bool?
  var ttl_seconds: Int?
  var env: [String: String]?
  var cwd: String?
  var run_config: RunConfig?
  var close_stdin: Bool?
  var pty: Bool?
}

extension LangSmithSandbox {
  static let setsidCandidates = ["/usr/bin/setsid", "/bin/setsid"]

  /// Starts `request` (or finds the command already started under its id) as envd mode runs
  /// processes: `<shell> -c <command>` on the host, as the agent's user, `SANDBOX_ROOT` set,
  /// in a working directory inside the root. `run_config.user` is not honoured (the agent runs
  /// everything as its own user) and a PTY is 80x24 (the protocol has no resize).
  func execute(_ request: LangSmithExecute, sse: Bool) throws(LangSmithError) -> (
    LangSmithCommand, created: Bool
  ) {
    guard !request.command.isEmpty else { throw .badRequest("command must not be empty") }
    if request.run_config != nil && (request.env != nil || request.cwd != nil) {
      throw .badRequest("run_config cannot be combined with env or cwd")
    }
    let id = request.command_id.flatMap { $0.isEmpty ? nil : $0 } ?? UUID().uuidString.lowercased()
    return try commands.findOrStart(id) { () throws(LangSmithError) in
      try start(request, id: id, sse: sse)
    }
  }

  private func start(_ request: LangSmithExecute, id: String, sse: Bool) throws(LangSmithError)
    -> LangSmithCommand
  {
    let workDir = request.run_config?.work_dir ?? request.cwd
    let directory =
      try workDir.map { raw throws(LangSmithError) in try Self.resolve(raw).cleaned }
      ?? defaultDirectory
    let shell = request.shell.flatMap { $0.isEmpty ? nil : $0 } ?? "/bin/bash"
    let pty = request.pty == true && !sse
    // A process group of its own (setsid execs the shell in place, same pid), so a kill reaches
    // the command's children too. A PTY's shell already leads its own session.
    let setsid = pty ? nil : Self.setsidCandidates.first { access($0, X_OK) == 0 }
    var config = ProcessConfig()
    config.cmd = setsid ?? shell
    config.args = (setsid == nil ? [] : [shell]) + ["-c", request.command]
    config.envs = (request.env ?? [:]).merging(request.run_config?.env_vars ?? [:]) { $1 }
    config.cwd = directory
    var start = StartRequest(process: config, stdin: true)
    if pty { start.pty = PTYSize(cols: 80, rows: 24) }
    let launcher = ProcessLauncher(jail: services.jail)
    let (process, subscription): (ManagedProcess, OutputSubscription)
    do {
      (process, subscription) = try launcher.launch(
        start, user: services.users.defaultUser, table: commands.processes)
    } catch {
      throw LangSmithError(400, "CommandError", error.message)
    }
    func seconds(_ value: Int?, default fallback: Int) -> Duration? {
      let value = value ?? fallback
      return value < 0 ? nil : .seconds(value)
    }
    let command = LangSmithCommand(
      id: id, process: process, ttl: seconds(request.ttl_seconds, default: 600),
      idleTimeout: seconds(request.idle_timeout_seconds, default: 300),
      killOnDisconnect: request.kill_on_disconnect ?? false, ownGroup: setsid != nil || pty)
    command.collect(subscription)
    command.limit(seconds: request.timeout_seconds ?? 60)
    // SSE has no stdin channel: the command reads EOF at once.
    if (sse || request.close_stdin == true) && !process.hasPTY {
      process.closeStdin { _ in }
    }
    return command
  }
}
