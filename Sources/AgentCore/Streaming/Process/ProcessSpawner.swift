import CPty
import Foundation
import Glibc

/// A started child: its pid and the parent's ends of its standard streams.
struct SpawnedChild: Sendable {
  var pid: pid_t
  /// Write end of the child's stdin pipe; nil when stdin is /dev/null or a PTY.
  var stdin: Int32?
  /// Read ends for the pump: stdout and stderr, or a dup of the PTY master. All non-blocking.
  var outputs: [(fd: Int32, kind: OutputKind)]
  /// The PTY master, for input and resizing.
  var pty: Int32?
}

/// What to run and how.
struct SpawnPlan: Sendable {
  /// Absolute path of the program, then argv (argv[0] included).
  var executable: String
  var arguments: [String]
  /// `KEY=VALUE` strings, already deduplicated.
  var environment: [String]
  /// An open directory (O_PATH is enough) the child `fchdir`s to before exec.
  var directoryFD: Int32
  var stdinPipe: Bool
  /// Run on a new pseudo-terminal of this size (then `stdinPipe` does not apply).
  var pty: PTYSize?
}

struct SpawnError: Error, CustomStringConvertible {
  var description: String
}

/// `posix_spawn` with pipes for the standard streams. The child inherits no other descriptor and
/// starts with default signal dispositions (the agent ignores SIGPIPE; its children must not).
enum ProcessSpawner {
  static func spawn(_ plan: SpawnPlan) throws(SpawnError) -> SpawnedChild {
    if let size = plan.pty { return try spawnOnPTY(plan, size: size) }
    var stdinPipe: [Int32] = [-1, -1]
    var stdoutPipe: [Int32] = [-1, -1]
    var stderrPipe: [Int32] = [-1, -1]
    func closeAll() {
      for fd in stdinPipe + stdoutPipe + stderrPipe where fd >= 0 { close(fd) }
    }
    guard !plan.stdinPipe || makePipe(&stdinPipe), makePipe(&stdoutPipe), makePipe(&stderrPipe)
    else {
      let reason = errnoText()
      closeAll()
      throw SpawnError(description: "pipe: \(reason)")
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if plan.stdinPipe {
      posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
    guard let addFchdir = GlibcExtras.addFchdir else {
      closeAll()
      throw SpawnError(description: "posix_spawn_file_actions_addfchdir_np is not available")
    }
    _ = addFchdir(&actions, plan.directoryFD)
    // Everything above 2 is closed in the child, whatever its close-on-exec flag says.
    if let addCloseFrom = GlibcExtras.addCloseFrom { _ = addCloseFrom(&actions, 3) }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
      sigaddset(&defaults, signal)
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var pid: pid_t = 0
    let status = withCStrings(plan.arguments) { argv in
      withCStrings(plan.environment) { envp in
        posix_spawn(&pid, plan.executable, &actions, &attributes, argv, envp)
      }
    }
    // The child's ends belong to the child now.
    for fd in [stdinPipe[0], stdoutPipe[1], stderrPipe[1]] where fd >= 0 { close(fd) }
    guard status == 0 else {
      for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] where fd >= 0 { close(fd) }
      throw SpawnError(
        description: "fork/exec \(plan.executable): \(String(cString: strerror(status)))")
    }
    for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] where fd >= 0 {
      _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
    return SpawnedChild(
      pid: pid, stdin: plan.stdinPipe ? stdinPipe[1] : nil,
      outputs: [(stdoutPipe[0], .stdout), (stderrPipe[0], .stderr)], pty: nil)
  }

  /// fork and exec in C (`cpty_spawn`): the child becomes a session leader with the terminal as
  /// its controlling tty and standard streams, as Go's `pty.StartWithSize` sets it up for envd.
  private static func spawnOnPTY(_ plan: SpawnPlan, size: PTYSize) throws(SpawnError)
    -> SpawnedChild
  {
    var master: Int32 = -1
    var failure: Int32 = 0
    let pid = withCStrings(plan.arguments) { argv in
      withCStrings(plan.environment) { envp in
        cpty_spawn(
          &master, UInt16(truncatingIfNeeded: size.cols), UInt16(truncatingIfNeeded: size.rows),
          plan.executable, argv, envp, plan.directoryFD, &failure)
      }
    }
    guard pid > 0 else {
      throw SpawnError(description: "fork/exec \(plan.executable): \(errnoText(failure))")
    }
    _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    // The pump reads (and closes) its own descriptor; the master stays for input and resizing.
    let reader = fcntl(master, F_DUPFD_CLOEXEC, 3)
    guard reader >= 0 else {
      let reason = errnoText()
      kill(pid, SIGKILL)
      close(master)
      // The reaper is not running yet: reap here so no zombie stays behind.
      var status: Int32 = 0
      while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
      throw SpawnError(description: "dup: \(reason)")
    }
    return SpawnedChild(pid: pid, stdin: nil, outputs: [(reader, .pty)], pty: master)
  }

  /// A pipe with close-on-exec on both ends (the spawn's dup2 clears it on the child's copies).
  private static func makePipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return true
  }

  private static func withCStrings<R>(
    _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
  ) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
  }
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// glibc functions that Swift's Glibc module does not import (they need `_GNU_SOURCE`),
/// looked up once at run time.
enum GlibcExtras {
  typealias FileActionFD =
    @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32)
    -> Int32

  /// `posix_spawn_file_actions_addfchdir_np` (glibc 2.29+).
  static let addFchdir: FileActionFD? = symbol("posix_spawn_file_actions_addfchdir_np")
  /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+).
  static let addCloseFrom: FileActionFD? = symbol("posix_spawn_file_actions_addclosefrom_np")

  private static func symbol<T>(_ name: String) -> T? {
    guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
    return unsafeBitCast(address, to: T.self)
  }
}
