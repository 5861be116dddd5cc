import CoreWeaveProtocol
import Foundation
import GRPCCore
import Glibc
import SwiftProtobuf

/// `StreamExec`: the client sends `init{command, env, tty, tty_width, tty_height}`, then
/// `stdin` bytes, `resize` and `close` (stdin EOF; so does the end of its stream); the server
/// answers `ready`, `output{STDOUT|STDERR, data}` as the command writes, then `exit{exit_code}`.
/// Bytes both ways, so binary-safe. Backpressure: output waits for the response stream (the
/// command then blocks on its pipe), and the next request is read only once the last stdin
/// chunk reached the command's pipe.
extension CoreWeaveSandbox {
  /// How long a stdin chunk may wait for a command that does not read.
  static let stdinTimeout = Duration.seconds(600)

  private struct Launched: Sendable {
    var process: ManagedProcess
    var subscription: OutputSubscription
    var ownGroup: Bool
  }

  func streamExec(
    request: RPCAsyncSequence<Coreweave_Sandbox_V1_ExecStreamRequest, any Error>,
    response: RPCWriter<Coreweave_Sandbox_V1_ExecStreamResponse>
  ) async throws {
    let (launches, launch) = AsyncStream.makeStream(of: Launched.self)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        defer { launch.finish() }
        try await self.readRequests(request, launch: launch)
      }
      var started: Launched?
      for await launched in launches {
        started = launched
        break
      }
      guard let started else {
        // The request side ended or failed before a command started: its error is the answer.
        try await group.next()
        throw CoreWeaveError(.invalidArgument, nil, "the stream ended before an init message")
      }
      defer {
        started.subscription.cancel()
        if started.process.isRunning {
          if started.ownGroup { _ = Glibc.kill(-started.process.pid, SIGKILL) }
          _ = started.process.signal(SIGKILL)
        }
      }
      try await response.write(
        .with { $0.ready = .with { $0.readyTime = Google_Protobuf_Timestamp(date: Date()) } })
      try await Self.forwardOutput(started.subscription, to: response)
      group.cancelAll()
    }
  }

  /// Reads the client's messages: the first must be `init`, which starts the command.
  private func readRequests(
    _ request: RPCAsyncSequence<Coreweave_Sandbox_V1_ExecStreamRequest, any Error>,
    launch: AsyncStream<Launched>.Continuation
  ) async throws {
    var process: ManagedProcess?
    var stdinBroken = false
    for try await message in request {
      switch message.message {
      case .init_p(let initial):
        guard process == nil else {
          throw CoreWeaveError(.invalidArgument, nil, "init may only be sent once")
        }
        let launched = try launchCommand(initial)
        process = launched.process
        launch.yield(launched)
      case .stdin(let data):
        guard let running = process else {
          throw CoreWeaveError(.invalidArgument, nil, "the first message must be init")
        }
        guard !stdinBroken, !data.isEmpty else { continue }
        let failure =
          running.hasPTY
          ? await running.writePTY(data, timeout: Self.stdinTimeout)
          : await running.writeStdin(data, timeout: Self.stdinTimeout)
        if let failure {
          // The command closed its stdin or ended: what it did not read is dropped, as a pipe does.
          stdinBroken = true
          services.logger.debug("stdin of exec \(running.pid): \(failure)")
        }
      case .resize(let size):
        _ = await process?.resizePTY(PTYSize(cols: size.width, rows: size.height))
      case .close:
        if let process { await Self.endInput(process) }
      case nil:
        continue
      }
    }
    guard let process else {
      throw CoreWeaveError(.invalidArgument, nil, "the stream ended before an init message")
    }
    await Self.endInput(process)
  }

  /// EOF on stdin; on a terminal, Ctrl-D.
  private static func endInput(_ process: ManagedProcess) async {
    if process.hasPTY {
      _ = await process.writePTY(Data([4]), timeout: .seconds(5))
    } else {
      _ = await process.closeStdin()
    }
  }

  /// Starts `init`'s argv as the other modes run commands (the agent's user, in the root
  /// folder, `SANDBOX_ROOT` set), in a process group of its own so that ending the stream kills
  /// its children too.
  private func launchCommand(_ start: Coreweave_Sandbox_V1_ExecStreamInit) throws -> Launched {
    try check(start.sandboxID)
    guard let executable = start.command.first, !executable.isEmpty else {
      throw CoreWeaveError(.invalidArgument, nil, "command is required")
    }
    // A terminal's shell already leads its own session.
    let setsid =
      start.tty ? nil : LangSmithSandbox.setsidCandidates.first { access($0, X_OK) == 0 }
    var config = ProcessConfig()
    config.cmd = setsid ?? executable
    config.args = (setsid == nil ? [] : [executable]) + start.command.dropFirst()
    config.envs = start.env
    config.cwd = "/"
    var request = StartRequest(process: config, stdin: true)
    if start.tty {
      request.pty = PTYSize(
        cols: start.ttyWidth == 0 ? 80 : start.ttyWidth,
        rows: start.ttyHeight == 0 ? 24 : start.ttyHeight)
    }
    do {
      let (process, subscription) = try ProcessLauncher(jail: services.jail).launch(
        request, user: services.users.defaultUser, table: processes)
      return Launched(process: process, subscription: subscription, ownGroup: setsid != nil)
    } catch {
      throw CoreWeaveError(.invalidArgument, nil, error.message)
    }
  }

  /// The command's output as it comes, then its exit (128+N for a signal).
  private static func forwardOutput(
    _ subscription: OutputSubscription,
    to response: RPCWriter<Coreweave_Sandbox_V1_ExecStreamResponse>
  ) async throws {
    func output(_ stream: Coreweave_Sandbox_V1_ExecStreamOutput.Stream, _ data: Data)
      -> Coreweave_Sandbox_V1_ExecStreamResponse
    {
      .with {
        $0.output = .with {
          $0.stream = stream
          $0.data = data
        }
      }
    }
    // The truncation test switch: the last `cut` bytes of stdout are held back, then dropped
    // when the output was large.
    let cut = TruncationFault.bytesToCut()
    var held = Data()
    var stdoutBytes = 0
    for await event in subscription.events {
      switch event {
      case .stdout(let data), .pty(let data):
        if cut > 0 {
          stdoutBytes += data.count
          held.append(data)
          if held.count > cut {
            try await response.write(output(.stdout, Data(held.prefix(held.count - cut))))
            held = Data(held.suffix(cut))
          }
        } else {
          try await response.write(output(.stdout, data))
        }
        subscription.gate.leave()
      case .stderr(let data):
        try await response.write(output(.stderr, data))
        subscription.gate.leave()
      case .end(let exit):
        if !held.isEmpty && stdoutBytes < TruncationFault.largeOutput {
          try await response.write(output(.stdout, held))
        }
        try await response.write(
          .with {
            $0.exit = .with {
              $0.exitCode = VercelCommand.exitCode(exit)
              $0.completedTime = Google_Protobuf_Timestamp(date: Date())
            }
          })
        return
      case .start, .keepalive:
        break
      }
    }
    throw CoreWeaveError(.internalError, nil, "the command's output ended without an exit")
  }
}
