import Foundation
import TestSupport
import XCTest

/// `--io-timeout` is what the user waits: with the agent stopped (SIGSTOP: connections are
/// accepted, nothing is answered) each call through the mount is EIO within the timeout and a
/// second, and the mount works again once the agent runs again. A killed agent is EIO at once,
/// and a new agent on its address serves the mount again. A subclass per backend.
class StalledAgentTestCase: MountTestCase {
  let ioTimeout = 2.0
  /// What "at once" means for a killed agent: no call waits for a timeout or for retries.
  let refusedLimit = 1.0
  // Without watches, names and attributes keep their 1 s timeouts: every call asks the agent.
  override var mountArguments: [String] {
    ["--io-timeout", "2", "--write-back", "off", "--watch", "off"]
  }

  /// Each call, timed by a Python child that opens `big` (to read) and `edit` (to write) and
  /// then has the agent sent `signal`: "NAME ERRNO-TEXT SECONDS" per call.
  private func timedCalls(after signal: Int32) throws -> [(
    name: String, result: String, seconds: Double
  )] {
    let pid = agent.child.process.processIdentifier
    // The child signals the agent only once its files are open, then waits for the signal.
    let signaller = Thread { [workDirectory] in
      let flag = workDirectory.path + "/signal-now"
      while !FileManager.default.fileExists(atPath: flag) { usleep(10_000) }
      kill(pid, signal)
      try? FileManager.default.removeItem(atPath: flag)
    }
    signaller.start()
    let output = try sh(
      """
      python3 - <<'PY'
      import os, time
      fd = os.open("mnt/big", os.O_RDONLY)
      edit = os.open("mnt/edit", os.O_WRONLY)
      with open("signal-now", "w"): pass
      while os.path.exists("signal-now"): time.sleep(0.02)
      time.sleep(1.1)  # past the attribute timeout: every call asks the agent
      def timed(name, call):
          start = time.time()
          try:
              call(); result = "ok"
          except OSError as error:
              result = error.strerror.replace(" ", "-")
          print(name, result, round(time.time() - start, 2), flush=True)
      def write_and_close():
          try:
              os.pwrite(edit, b"changed\\n", 0)
          finally:
              os.close(edit)
      timed("read", lambda: os.pread(fd, 4096, 3 << 20))
      timed("write", write_and_close)
      timed("stat", lambda: os.stat("mnt/d1"))
      timed("list", lambda: os.listdir("mnt/d2"))
      timed("open", lambda: os.open("mnt/small", os.O_RDONLY))
      timed("create", lambda: os.open("mnt/d3/new", os.O_CREAT | os.O_WRONLY, 0o644))
      timed("mkdir", lambda: os.mkdir("mnt/newdir"))
      PY
      """, timeout: 120)
    return output.split(separator: "\n").map { line in
      let parts = line.split(separator: " ")
      return (String(parts[0]), String(parts[1]), Double(parts[2]) ?? -1)
    }
  }

  private func makeFiles() throws {
    try sh(
      "head -c 8000000 /dev/urandom > root/big && echo hi > root/small && echo old > root/edit && mkdir root/d1 root/d2 root/d3"
    )
    try sh("ls -la mnt > /dev/null")
  }

  /// Every call, and the mount afterwards, as it should work.
  private func checkTheMountWorks() throws {
    XCTAssertEqual(try sh("cat mnt/small"), "hi\n")
    try sh("cmp mnt/big root/big && ls mnt/d2 && mkdir mnt/after && echo new > mnt/edit")
    XCTAssertEqual(try sh("cat root/edit"), "new\n")
  }

  func checkAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers() throws {
    try makeFiles()
    let pid = agent.child.process.processIdentifier
    defer { kill(pid, SIGCONT) }
    let calls = try timedCalls(after: SIGSTOP)
    XCTAssertEqual(calls.count, 7, "\(calls)")
    for call in calls {
      XCTAssertEqual(call.result, "Input/output-error", "\(call)")
      XCTAssertLessThan(call.seconds, ioTimeout + 1, "\(call)")
    }
    kill(pid, SIGCONT)
    // Back within the one-second health check.
    Thread.sleep(forTimeInterval: 2)
    try checkTheMountWorks()
  }

  func checkAKilledAgentIsEIOAtOnceAndARestartedOneServes() throws {
    try makeFiles()
    let calls = try timedCalls(after: SIGKILL)
    XCTAssertEqual(calls.count, 7, "\(calls)")
    for call in calls {
      XCTAssertEqual(call.result, "Input/output-error", "\(call)")
      XCTAssertLessThan(call.seconds, refusedLimit, "\(call)")
    }
    try sandbox.restartAgent(arguments: agentArguments, environment: agentEnvironment)
    Thread.sleep(forTimeInterval: 2)
    try checkTheMountWorks()
  }
}

final class StalledAgentTests: StalledAgentTestCase {
  func testAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers() throws {
    try checkAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers()
  }

  func testAKilledAgentIsEIOAtOnceAndARestartedOneServes() throws {
    try checkAKilledAgentIsEIOAtOnceAndARestartedOneServes()
  }
}

/// The same through `vercel://`: every call is a `cmd` or `fs/*` request through the
/// retrying HTTP client.
final class VercelStalledAgentTests: StalledAgentTestCase {
  override var agentArguments: [String] { VercelAgent.arguments }
  override var agentEnvironment: [String: String]? { VercelAgent.environment }
  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try VercelAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers() throws {
    try checkAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers()
  }

  func testAKilledAgentIsEIOAtOnceAndARestartedOneServes() throws {
    try checkAKilledAgentIsEIOAtOnceAndARestartedOneServes()
  }
}

/// The same through `langsmith://`: data through its HTTP routes, metadata through commands
/// over the WebSocket.
final class LangSmithStalledAgentTests: StalledAgentTestCase {
  override var agentArguments: [String] { LangSmithAgent.arguments }
  override var agentEnvironment: [String: String]? { LangSmithAgent.environment }
  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try LangSmithAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers() throws {
    try checkAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers()
  }

  func testAKilledAgentIsEIOAtOnceAndARestartedOneServes() throws {
    try checkAKilledAgentIsEIOAtOnceAndARestartedOneServes()
  }
}

/// The same through `cwsandbox://`: gRPC calls (ReadFile, WriteFile, StreamExec) over h2c.
final class CoreWeaveStalledAgentTests: StalledAgentTestCase {
  override var agentArguments: [String] { CoreWeaveAgent.arguments }
  override var agentEnvironment: [String: String]? { CoreWeaveAgent.environment }
  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    try CoreWeaveAgent.mountTarget(agentURL: agentURL, folder: workDirectory.path)
  }

  func testAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers() throws {
    try checkAStoppedAgentIsEIOWithinTheTimeoutAndTheMountRecovers()
  }

  func testAKilledAgentIsEIOAtOnceAndARestartedOneServes() throws {
    try checkAKilledAgentIsEIOAtOnceAndARestartedOneServes()
  }
}
