import Foundation
import TestSupport
import XCTest

/// What `sandbox-mount` checks before mounting: each failure is one clear line on stderr, a
/// non-zero exit, and nothing mounted.
final class MountCheckTests: XCTestCase {
  var workDirectory: TemporaryDirectory!
  var mountpoint: String { workDirectory.path + "/mnt" }
  var root: String { workDirectory.path + "/root" }
  var agent: RunningAgent?
  var mounts: [RunningMount] = []

  override func setUpWithError() throws {
    try super.setUpWithError()
    workDirectory = try TemporaryDirectory(prefix: "mount-check")
    try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
  }

  override func tearDown() {
    for mount in mounts { mount.unmount() }
    if RunningMount.isMounted(mountpoint) {
      _ = try? runCommand(["fusermount3", "-u", mountpoint], timeout: 20)
      if RunningMount.isMounted(mountpoint) {
        _ = try? runCommand(["fusermount3", "-uz", mountpoint], timeout: 20)
      }
    }
    stopDaemons()
    agent?.stop()
    workDirectory?.remove()
    super.tearDown()
  }

  /// Runs sandbox-mount to completion (it must not stay running) and returns its result.
  private func mountCommand(
    _ arguments: [String], environment: [String: String] = [:], foreground: Bool = true
  ) throws -> (status: Int32, output: String, error: String) {
    try runCommand(
      [BuiltProducts.executable("sandbox-mount")] + arguments + (foreground ? ["-f"] : []),
      environment: environment.merging(["SANDBOX_TOKEN": ""]) { first, _ in first }, timeout: 60)
  }

  private func assertRefused(
    _ result: (status: Int32, output: String, error: String), mentioning text: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertNotEqual(result.status, 0, file: file, line: line)
    let lines = result.error.split(separator: "\n")
    XCTAssertEqual(lines.count, 1, "expected one line: \(result.error)", file: file, line: line)
    XCTAssertTrue(
      result.error.contains(text), "expected '\(text)' in: \(result.error)", file: file,
      line: line)
    XCTAssertFalse(RunningMount.isMounted(mountpoint), file: file, line: line)
  }

  func testInvalidURL() throws {
    assertRefused(try mountCommand(["not a url", mountpoint]), mentioning: "invalid URL")
    assertRefused(try mountCommand(["ftp://host/x", mountpoint]), mentioning: "invalid URL")
  }

  func testUnknownSchemeListsTheKnownOnes() throws {
    let result = try mountCommand(["ftp://host/x", mountpoint])
    for text in ["invalid URL 'ftp://host/x'", "http://", "https://", "e2b://"] {
      assertRefused(result, mentioning: text)
    }
  }

  func testUnreachableURL() throws {
    assertRefused(
      try mountCommand(["http://127.0.0.1:1", mountpoint, "--connect-timeout", "3"]),
      mentioning: "127.0.0.1:1")
  }

  func testMissingAndWrongMountpoints() throws {
    let agent = try RunningAgent(root: root)
    self.agent = agent
    assertRefused(
      try mountCommand([agent.url, workDirectory.path + "/missing"]), mentioning: "missing")
    FileManager.default.createFile(atPath: workDirectory.path + "/file", contents: Data())
    assertRefused(
      try mountCommand([agent.url, workDirectory.path + "/file"]), mentioning: "not a directory")
  }

  func testAlreadyMounted() throws {
    let agent = try RunningAgent(root: root)
    self.agent = agent
    mounts.append(try RunningMount(url: agent.url, mountpoint: mountpoint))
    let result = try mountCommand([agent.url, mountpoint])
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("already mounted"), result.error)
  }

  func testBadToken() throws {
    let tokenFile = workDirectory.path + "/token"
    try "right-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    let agent = try RunningAgent(root: root, arguments: ["--token-file", tokenFile])
    self.agent = agent
    assertRefused(
      try mountCommand([agent.url, mountpoint], environment: ["SANDBOX_TOKEN": "wrong-token"]),
      mentioning: "token")
    assertRefused(try mountCommand([agent.url, mountpoint]), mentioning: "token")

    // The right token, from a file, mounts.
    mounts.append(
      try RunningMount(
        url: agent.url, mountpoint: mountpoint, arguments: ["--token-file", tokenFile]))
    XCTAssertTrue(RunningMount.isMounted(mountpoint))
  }

  func testMissingRemoteRoot() throws {
    let agent = try RunningAgent(root: root)
    self.agent = agent
    assertRefused(
      try mountCommand([agent.url, mountpoint, "--root", "/no/such/folder"]),
      mentioning: "/no/such/folder")
  }

  /// Without -f the command returns once mounted, leaving a daemon that `fusermount3 -u` ends;
  /// a failure is still reported by the command itself.
  func testDaemonMode() throws {
    let agent = try RunningAgent(root: root)
    self.agent = agent
    try "hello\n".write(toFile: root + "/hello.txt", atomically: true, encoding: .utf8)

    assertRefused(
      try mountCommand(["http://127.0.0.1:1", mountpoint], foreground: false),
      mentioning: "127.0.0.1:1")

    let started = try mountCommand([agent.url, mountpoint], foreground: false)
    XCTAssertEqual(started.status, 0, started.error)
    XCTAssertTrue(RunningMount.isMounted(mountpoint))
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/hello.txt", encoding: .utf8), "hello\n")
    XCTAssertEqual(try runCommand(["fusermount3", "-u", mountpoint]).status, 0)
    let deadline = Date().addingTimeInterval(15)
    while !daemons().isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    XCTAssertEqual(daemons(), [], "the daemon should exit after fusermount3 -u")
  }

  /// sandbox-mount processes serving this test's mountpoint.
  private func daemons() -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
      guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
        return false
      }
      let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
      return arguments.first?.hasSuffix("sandbox-mount") == true && arguments.contains(mountpoint)
    }
  }

  private func stopDaemons() {
    for pid in daemons() { kill(pid, SIGKILL) }
  }
}
