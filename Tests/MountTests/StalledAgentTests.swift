import Foundation
import TestSupport
import XCTest

/// `--io-timeout` is what the user waits: with the agent stopped (SIGSTOP: connections are
/// accepted, nothing is answered) each call through the mount is EIO within the timeout and a
/// second, and the mount works again once the agent runs again. A killed agent is EIO at once.
final class StalledAgentTests: MountTestCase {
  private let ioTimeout = 2.0
  // Without watches, names and attributes keep their 1 s timeouts: every call asks the agent.
  override var mountArguments: [String] {
    ["--io-timeout", "2", "--write-back", "off", "--watch", "off"]
  }

  /// Each call, timed by a Python child: "NAME ERRNO-TEXT SECONDS" per line.
  private func timedCalls() throws -> [(name: String, result: String, seconds: Double)] {
    let output = try sh(
      """
      python3 - <<'PY'
      import os, time
      fd = os.open("mnt/big", os.O_RDONLY)
      with open("stop-now", "w"): pass
      while os.path.exists("stop-now"): time.sleep(0.02)
      def timed(name, call):
          start = time.time()
          try:
              call(); result = "ok"
          except OSError as error:
              result = error.strerror.replace(" ", "-")
          print(name, result, round(time.time() - start, 2))
      timed("read", lambda: os.pread(fd, 4096, 3 << 20))
      timed("stat", lambda: os.stat("mnt/d1"))
      timed("list", lambda: os.listdir("mnt/d2"))
      timed("open", lambda: os.open("mnt/small", os.O_RDONLY))
      timed("create", lambda: os.open("mnt/d3/new", os.O_CREAT | os.O_WRONLY, 0o644))
      timed("mkdir", lambda: os.mkdir("mnt/newdir"))
      PY
      """)
    return output.split(separator: "\n").map { line in
      let parts = line.split(separator: " ")
      return (String(parts[0]), String(parts[1]), Double(parts[2]) ?? -1)
    }
  }

  func testAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers() throws {
    try sh(
      "head -c 8000000 /dev/urandom > root/big && echo hi > root/small && mkdir root/d1 root/d2 root/d3"
    )
    try sh("ls -la mnt > /dev/null")
    let pid = agent.child.process.processIdentifier
    // The child stops the agent only once its file is open, then waits for the signal.
    let signaller = Thread { [workDirectory] in
      let flag = workDirectory.path + "/stop-now"
      while !FileManager.default.fileExists(atPath: flag) { usleep(10_000) }
      kill(pid, SIGSTOP)
      try? FileManager.default.removeItem(atPath: flag)
    }
    signaller.start()
    defer { kill(pid, SIGCONT) }
    Thread.sleep(forTimeInterval: 1.1)  // past the attribute timeout: every call asks the agent
    for call in try timedCalls() {
      XCTAssertEqual(call.result, "Input/output-error", call.name)
      XCTAssertLessThan(call.seconds, ioTimeout + 1, call.name)
    }
    kill(pid, SIGCONT)
    // Back within the one-second health check.
    Thread.sleep(forTimeInterval: 2)
    XCTAssertEqual(try sh("cat mnt/small"), "hi\n")
    try sh("cmp mnt/big root/big && ls mnt/d2 && mkdir mnt/after")
  }
}
