import Foundation

/// Daemonizing by running ourselves again, instead of fork().
///
/// fork() in a process that already has threads (Swift's runtime, libcurl's transfer thread,
/// which the connection check needs) leaves the child with only the forking thread and
/// possibly-held locks. So the parent does no work: it starts a copy of itself in the foreground,
/// in a new session, with stdout connected to a pipe. The copy does every check and the mount,
/// printing errors on the inherited stderr, and writes `ready` to the pipe once mounted; the
/// parent then exits 0, or with the copy's status if it ended without mounting.
enum Daemon {
  private static let marker = "SANDBOX_MOUNT_DAEMON"

  /// Whether this process is the background copy.
  static var isBackgroundCopy: Bool {
    ProcessInfo.processInfo.environment[marker] != nil
  }

  /// In the parent: starts the background copy and waits for its verdict; returns the exit status.
  static func startBackgroundCopy() -> Int32 {
    let copy = Process()
    copy.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    copy.arguments = Array(CommandLine.arguments.dropFirst()) + ["-f"]
    copy.environment = ProcessInfo.processInfo.environment.merging([marker: "1"]) { $1 }
    let verdict = Pipe()
    copy.standardOutput = verdict
    copy.standardInput = FileHandle.nullDevice
    do {
      try copy.run()
    } catch {
      FileHandle.standardError.write(
        Data("sandbox-mount: cannot start the daemon: \(error)\n".utf8))
      return 1
    }
    try? verdict.fileHandleForWriting.close()
    let said = verdict.fileHandleForReading.readDataToEndOfFile()
    if String(decoding: said, as: UTF8.self).hasPrefix("ready") { return 0 }
    copy.waitUntilExit()
    return copy.terminationStatus == 0 ? 1 : copy.terminationStatus
  }

  /// In the background copy, first thing: leave the terminal's session so its Ctrl-C and hangup
  /// do not reach us.
  static func detachFromTerminal() {
    _ = setsid()
  }

  /// In the background copy, once mounted: tell the parent, then send stdio to the log file
  /// (or /dev/null) and leave the working directory.
  static func reportMounted(logFile: String?) {
    let ready = Array("ready\n".utf8)
    _ = ready.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    let null = open("/dev/null", O_RDWR)
    let log = logFile.map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) } ?? -1
    let output = log >= 0 ? log : null
    dup2(null, STDIN_FILENO)
    dup2(output, STDOUT_FILENO)
    dup2(output, STDERR_FILENO)
    if null > STDERR_FILENO { close(null) }
    if log > STDERR_FILENO { close(log) }
    _ = chdir("/")
  }
}
