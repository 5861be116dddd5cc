/// One command for a sandbox to run: argv (never parsed by a shell), its environment, bytes for
/// its stdin, and limits.
public struct ProcessCommand: Sendable, Equatable {
  public var executable: String
  public var arguments: [String]
  public var environment: [String: String]
  /// Working folder inside the sandbox.
  public var workingDirectory: String
  /// Written to stdin, which is then closed. Empty: stdin is closed at once.
  public var standardInput: [UInt8]
  /// Seconds until the command is killed and the call fails with ETIMEDOUT or EIO; nil: the
  /// executor's own request timeout.
  public var timeout: Double?
  /// More output than this (stdout and stderr together) fails the call with EIO.
  public var outputLimit: Int

  public init(
    _ executable: String, _ arguments: [String], environment: [String: String] = ["LC_ALL": "C"],
    workingDirectory: String = "/", standardInput: [UInt8] = [], timeout: Double? = nil,
    outputLimit: Int = 16 << 20
  ) {
    self.executable = executable
    self.arguments = arguments
    self.environment = environment
    self.workingDirectory = workingDirectory
    self.standardInput = standardInput
    self.timeout = timeout
    self.outputLimit = outputLimit
  }
}

extension ProcessCommand {
  /// The argv as one line for a sandbox API that takes a shell string (LangSmith's
  /// `command`): each word single-quoted, so the shell parses nothing.
  public var shellLine: String {
    ([executable] + arguments).map(Self.shellQuoted).joined(separator: " ")
  }

  public static func shellQuoted(_ word: String) -> String {
    var quoted = "'"
    for character in word {
      quoted += character == "'" ? "'\\''" : String(character)
    }
    return quoted + "'"
  }
}

/// What a finished process printed and how it ended.
public struct ProcessOutcome: Sendable {
  public var stdout: [UInt8]
  public var stderr: [UInt8]
  /// nil when it did not exit normally (killed by a signal or the timeout).
  public var exitCode: Int32?
  /// The sandbox's own words for how it ended, for messages.
  public var status: String

  public init(
    stdout: [UInt8] = [], stderr: [UInt8] = [], exitCode: Int32? = nil, status: String = ""
  ) {
    self.stdout = stdout
    self.stderr = stderr
    self.exitCode = exitCode
    self.status = status
  }
}

/// A sandbox's command API: envd's `Process/Start`, and next Vercel's `cmd`, LangSmith's
/// WebSocket, CoreWeave's `StreamExec`. The exec layer builds POSIX operations on it
/// (`ExecFilesystem`). Throws a `RemoteError` when the command could not run; a command that
/// ran and failed is an outcome with its exit code.
public protocol ProcessExecutor: Sendable {
  func run(_ command: ProcessCommand) async throws -> ProcessOutcome

  /// Whether the sandbox's output channel carries bytes as they are; false (text only, e.g.
  /// Vercel's stdout, LangSmith's): binary output is sent base64.
  var binarySafeOutput: Bool { get }
}

extension ProcessExecutor {
  public var binarySafeOutput: Bool { true }
}
