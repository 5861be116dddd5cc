import Backend
import ExecLayer
import Foundation

/// Commands through CoreWeave's `StreamExec`, as the exec layer's executor: argv as given,
/// stdin streamed in 1 MiB frames, stdout and stderr as bytes (binary-safe), the exit code.
/// The deadline is the command's timeout, else the request timeout.
struct CoreWeaveExecutor: ProcessExecutor {
  let client: CoreWeaveClient

  var binarySafeOutput: Bool { true }

  func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
    let context = "command \(command.executable)"
    var argv = [command.executable] + command.arguments
    // StreamExec has no working folder: a shell changes into it (under `$SANDBOX_ROOT` where
    // sandbox-agent serves a folder).
    if command.workingDirectory != "/" && !command.workingDirectory.isEmpty {
      argv =
        ["/bin/sh", "-c", "cd \"${SANDBOX_ROOT:-}$0\" && exec \"$@\"", command.workingDirectory]
        + argv
    }
    let output = OutputBuffer(limit: command.outputLimit, context: context)
    let ending = try await client.streamExec(
      argv, environment: command.environment,
      input: command.standardInput.isEmpty ? .none : .bytes(command.standardInput),
      deadline: (command.timeout ?? client.configuration.requestTimeout) + 5, stall: nil,
      context: context
    ) { data in try output.append(data) }
    return ProcessOutcome(
      stdout: output.contents, stderr: ending.stderr, exitCode: ending.exitCode,
      status: ending.status)
  }
}
