import Foundation
import Glibc

/// Turns a `StartRequest` into a running `ManagedProcess`, the way envd's process handler does:
///
/// - The command runs as `/bin/sh -c 'exec "$@"' -- <cmd> <args…>`, so `cmd` is looked up on
///   `PATH` and the args reach it verbatim, never parsed by a shell.
/// - It runs as the RPC user: when the agent is root and the user is someone else, through
///   `setpriv --reuid --regid --init-groups` (uid, primary gid and supplementary groups).
/// - Environment: the agent's `PATH`, `HOME`, `USER`, `LOGNAME`, `SANDBOX_ROOT`, then the
///   request's `envs` (later values win).
/// - `cwd` is a protocol path opened through the root jail; empty means the user's home inside
///   the root, or else the root itself.
/// - With `pty`, the process runs on a new pseudo-terminal of that size, its controlling tty.
///
/// `SANDBOX_ROOT` is the served folder's host path (`--root`). Processes run on the host, not in a
/// chroot, so a client that wants a process to touch protocol path `/a` passes
/// `$SANDBOX_ROOT/a` (e.g. `sh -c 'chmod 600 "$SANDBOX_ROOT/$1"' sh a`). With `--root /` it is `/`.
struct ProcessLauncher: Sendable {
  let jail: RootJail

  static let shell = "/bin/sh"
  static let setprivCandidates = ["/usr/bin/setpriv", "/bin/setpriv"]

  func launch(
    _ request: StartRequest, user: AgentUser, table: ProcessTable
  ) throws(ConnectError) -> (ManagedProcess, OutputSubscription) {
    let config = request.process ?? ProcessConfig()
    let directory = try workingDirectory(config.cwd ?? "", user: user)
    let userCommand = ([config.cmd] + config.args).joined(separator: " ")

    var arguments = [Self.shell, "-c", "exec \"$@\"", "--", config.cmd] + config.args
    if geteuid() != user.uid {
      guard geteuid() == 0 else {
        throw ConnectError(
          .invalidArgument,
          "error starting process '\(userCommand)': fork/exec \(Self.shell): operation not permitted"
        )
      }
      guard let setpriv = Self.setprivCandidates.first(where: { access($0, X_OK) == 0 }) else {
        throw ConnectError(
          .internal, "cannot run as user '\(user.name)': setpriv (util-linux) is not installed")
      }
      arguments =
        [setpriv, "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--"] + arguments
    }
    let plan = SpawnPlan(
      executable: arguments[0], arguments: arguments,
      environment: environment(config, user: user),
      directoryFD: directory.raw, stdinPipe: request.stdin ?? true, pty: request.pty)
    do {
      return try withExtendedLifetime(directory) { () throws(SpawnError) in
        try ManagedProcess.start(plan: plan, config: config, tag: request.tag, table: table) {
          table.remove($0, exit: $1)
        }
      }
    } catch {
      if let size = request.pty {
        throw ConnectError(
          .invalidArgument,
          "error starting pty with command '\(userCommand)' in dir '\(config.cwd ?? "")' with '\(size.cols)' cols and '\(size.rows)' rows: \(error.description)"
        )
      }
      throw ConnectError(
        .invalidArgument, "error starting process '\(userCommand)': \(error.description)")
    }
  }

  /// The directory the child starts in, opened through the jail so no `..` or symlink leads
  /// outside the root; the child `fchdir`s to this very descriptor, so nothing can swap it.
  private func workingDirectory(_ cwd: String, user: AgentUser) throws(ConnectError)
    -> FileDescriptor
  {
    var requested: ProtocolPath
    if cwd.isEmpty {
      requested = (try? ProtocolPath.expand("", user: user)) ?? .root
      if (try? jail.stat(requested))?.isDirectory != true { requested = .root }
    } else {
      do {
        requested = try ProtocolPath.expand(cwd, user: user)
      } catch {
        throw ConnectError(.invalidArgument, error.message)
      }
    }
    do {
      return try jail.open(requested, flags: LinuxFlags.openPath | O_DIRECTORY, operation: "chdir")
    } catch {
      if error.code == ENOENT {
        throw ConnectError(.invalidArgument, "cwd '\(requested.requested)' does not exist")
      }
      throw ConnectError(.invalidArgument, "error starting process: \(error)")
    }
  }

  /// What every process starts with, before its request's `envs`: nothing else of the agent's
  /// own environment (its token, say) reaches a process or `/envs`.
  static func baseEnvironment(user: AgentUser, hostRoot: String) -> [(String, String)] {
    [
      ("PATH", ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"),
      ("HOME", user.home), ("USER", user.name), ("LOGNAME", user.name),
      ("SANDBOX_ROOT", hostRoot),
    ]
  }

  private func environment(_ config: ProcessConfig, user: AgentUser) -> [String] {
    var pairs = Self.baseEnvironment(user: user, hostRoot: jail.hostRoot)
    pairs += config.envs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    // Later values win, as Go's exec deduplicates them.
    var order: [String] = []
    var values: [String: String] = [:]
    for (key, value) in pairs {
      if values[key] == nil { order.append(key) }
      values[key] = value
    }
    return order.map { "\($0)=\(values[$0]!)" }
  }
}
