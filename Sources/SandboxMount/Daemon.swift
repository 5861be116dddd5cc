import Foundation

/// Daemonizing by running ourselves again, instead of fork().
///
/// fork() in a process that already has threads (Swift's runtime, libcurl's transfer thread,
/// which the connection check needs) leaves the child with only the forking thread and
/// possibly-held locks. So the parent does no work: it starts a copy of itself in the foreground,
/// in a new session, with stdout connected to a pipe. The copy does every check and the mount,
/// printing errors on the inherited stderr, and writes `ready` to the pipe once mounted; the
/// parent then exits 0, or with the copy's status if it ended without mounting.
/// posix_spawn, not Foundation's Process: Process puts the child in a process group of its own,
/// which then cannot start a session.
enum Daemon {
  private static let marker = "SANDBOX_MOUNT_DAEMON"

  /// Whether this process is the background copy.
  static var isBackgroundCopy: Bool {
    ProcessInfo.processInfo.environment[marker] != nil
  }

  /// In the parent: starts the background copy and waits for its verdict; returns the exit status.
  static func startBackgroundCopy() -> Int32 {
    var verdict: [Int32] = [-1, -1]
    guard pipe(&verdict) == 0 else {
      return complain("cannot make a pipe: \(String(cString: strerror(errno)))")
    }
    // Only the dup2 onto the child's stdout survives exec; neither end leaks as such.
    for end in verdict { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    defer { close(verdict[0]) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, verdict[1], STDOUT_FILENO)
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
    closeInheritedDescriptors(&actions)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // POSIX_SPAWN_SETSID (glibc 2.26+; not exported to Swift): a session of its own, so the
    // terminal's Ctrl-C and hangup never reach the daemon.
    posix_spawnattr_setflags(&attributes, 0x80)

    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    let arguments = [executable] + CommandLine.arguments.dropFirst() + ["-f"]
    let environment =
      ProcessInfo.processInfo.environment.merging([marker: "1"]) { $1 }.map { "\($0)=\($1)" }
    var pid: pid_t = 0
    let spawned = withCStrings(arguments) { argv in
      withCStrings(environment) { envp in
        posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
      }
    }
    close(verdict[1])
    guard spawned == 0 else {
      return complain("cannot start the daemon: \(String(cString: strerror(spawned)))")
    }

    var said: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64)
    while true {
      let count = read(verdict[0], &buffer, buffer.count)
      if count > 0 {
        said += buffer[..<count]
      } else if count < 0 && errno == EINTR {
        continue
      } else {
        break
      }
    }
    if String(decoding: said, as: UTF8.self).hasPrefix("ready") { return 0 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    let code = (status >> 8) & 0xff
    return exited && code != 0 ? code : 1
  }

  /// Whoever started us may have left descriptors open (Foundation's Process keeps one in its
  /// child to notice the child's end); a daemon holding them would make that starter wait for it
  /// forever. glibc's closefrom action is not exported to Swift, so it is looked up by name.
  private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom =
      @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32)
      -> Int32
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
    _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, STDERR_FILENO + 1)
  }

  private static func complain(_ message: String) -> Int32 {
    FileHandle.standardError.write(Data("sandbox-mount: \(message)\n".utf8))
    return 1
  }

  /// Runs `body` with a NULL-terminated C array of `strings`.
  private static func withCStrings<Result>(
    _ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> Result
  ) -> Result {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
  }

  /// In the background copy, first thing: its own session already (POSIX_SPAWN_SETSID); kept
  /// for copies started some other way.
  static func detachFromTerminal() {
    if getsid(0) != getpid() { _ = setsid() }
  }

  /// In the background copy, once mounted: tell the parent, then send stdio to the log file
  /// (or /dev/null) and leave the working directory.
  static func reportMounted(logFile: String?) {
    fflush(nil)  // log lines buffered so far belong on the old stderr
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
