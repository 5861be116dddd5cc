import Foundation
import TestSupport
import XCTest

/// sandbox-mount as mount(8), mount.fuse3 and /etc/fstab run it: every option as `-o name=value`,
/// options meant for mount and systemd dropped, the daemon's verdict as the exit status; and
/// tokens kept off plain http:// to other hosts.
final class MountHelperTests: XCTestCase {
  var workDirectory: TemporaryDirectory!
  var mountpoint: String { workDirectory.path + "/mnt" }
  var root: String { workDirectory.path + "/root" }
  var tokenFile: String { workDirectory.path + "/token" }
  var agent: RunningAgent?
  /// Links made for mount.fuse3 to find the binary under a type of this test's own.
  var links: [String] = []

  override func setUpWithError() throws {
    try super.setUpWithError()
    workDirectory = try TemporaryDirectory(prefix: "mount-helper")
    for folder in [mountpoint, root, root + "/sub"] {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    try "helper-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    try "in sub\n".write(toFile: root + "/sub/file.txt", atomically: true, encoding: .utf8)
  }

  override func tearDown() {
    unmount()
    agent?.stop()
    for link in links { unlink(link) }
    workDirectory?.remove()
    super.tearDown()
  }

  private func unmount() {
    for _ in 0..<2 where RunningMount.isMounted(mountpoint) {
      _ = try? runCommand(["umount", mountpoint], timeout: 20)
    }
    if RunningMount.isMounted(mountpoint) {
      _ = try? runCommand(["fusermount3", "-uz", mountpoint], timeout: 20)
    }
    // The daemon exits once unmounted (drained write-back included).
    let deadline = Date().addingTimeInterval(15)
    while !daemons().isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
  }

  private func startAgent(_ arguments: [String] = []) throws -> RunningAgent {
    let agent = try RunningAgent(
      root: root, arguments: arguments, environment: ["SANDBOX_AGENT_TOKEN": "helper-token"])
    self.agent = agent
    return agent
  }

  private func sandboxMount(
    _ arguments: [String], environment: [String: String] = ["SANDBOX_TOKEN": ""]
  ) throws -> (status: Int32, output: String, error: String) {
    try runCommand(
      [BuiltProducts.executable("sandbox-mount")] + arguments, environment: environment,
      timeout: 60)
  }

  private func assertOneLine(
    _ result: (status: Int32, output: String, error: String), mentioning text: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertNotEqual(result.status, 0, file: file, line: line)
    XCTAssertEqual(
      result.error.split(separator: "\n").count, 1, result.error, file: file, line: line)
    XCTAssertTrue(result.error.contains(text), result.error, file: file, line: line)
    XCTAssertFalse(RunningMount.isMounted(mountpoint), file: file, line: line)
  }

  // MARK: Tokens and plain http://

  /// 192.0.2.1 (TEST-NET-1) is not loopback: the token stays home, before any connection.
  func testATokenIsNotSentInTheClearToAnotherHost() throws {
    let started = Date()
    assertOneLine(
      try sandboxMount(["http://192.0.2.1:49983", mountpoint, "-f", "--token-file", tokenFile]),
      mentioning: "refusing to send the token in the clear to http://192.0.2.1:49983")
    XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    assertOneLine(
      try sandboxMount(
        ["http://192.0.2.1:49983", mountpoint, "-f"], environment: ["SANDBOX_TOKEN": "t"]),
      mentioning: "in the clear")
    assertOneLine(
      try sandboxMount([
        "vercel://box", mountpoint, "-f", "--api-url", "http://192.0.2.1/api", "--token-file",
        tokenFile, "--team", "t",
      ]), mentioning: "in the clear")
    assertOneLine(
      try sandboxMount([
        "langsmith://box", mountpoint, "-f", "--api-url", "http://192.0.2.1", "--token-file",
        tokenFile,
      ]), mentioning: "in the clear")
    assertOneLine(
      try sandboxMount([
        "cwsandbox://box", mountpoint, "-f", "--api-url", "http://192.0.2.1:1", "--token-file",
        tokenFile,
      ]), mentioning: "in the clear")

    // --insecure sends it: the failure is now the unreachable host.
    let insecure = try sandboxMount([
      "http://192.0.2.1:49983", mountpoint, "-f", "--token-file", tokenFile, "--insecure",
      "--connect-timeout", "1",
    ])
    XCTAssertNotEqual(insecure.status, 0)
    XCTAssertFalse(insecure.error.contains("in the clear"), insecure.error)
    XCTAssertTrue(insecure.error.contains("192.0.2.1"), insecure.error)
  }

  /// Loopback (127.0.0.0/8, localhost) and tokenless mounts need no --insecure.
  func testLoopbackAndTokenlessMountsNeedNoInsecure() throws {
    let agent = try startAgent()
    let localhost = agent.url.replacingOccurrences(of: "127.0.0.1", with: "localhost")
    let mounted = try sandboxMount([localhost, mountpoint, "--token-file", tokenFile])
    XCTAssertEqual(mounted.status, 0, mounted.error)
    unmount()
    let tokenless = try sandboxMount(
      ["http://192.0.2.1:49983", mountpoint, "-f", "--connect-timeout", "1"])
    XCTAssertFalse(tokenless.error.contains("in the clear"), tokenless.error)
  }

  // MARK: -o forms

  /// Every option as `-o`: values, flags, mount's and systemd's own options dropped, FUSE's
  /// passed on. Without -f the command returns once the mount is live.
  func testEveryOptionHasAnOptionForm() throws {
    let agent = try startAgent()
    let result = try sandboxMount([
      agent.url, mountpoint, "-o",
      "token_file=\(tokenFile),root=/sub,read_only,attr_timeout=0,log-level=debug,"
        + "defaults,rw,_netdev,nofail,noauto,user,auto,x-systemd.automount,"
        + "x-systemd.idle-timeout=10min,default_permissions",
      "-o", "write_back=off,block_size=64K,memory_cache=1M",
    ])
    XCTAssertEqual(result.status, 0, result.error)
    XCTAssertTrue(RunningMount.isMounted(mountpoint))
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/file.txt", encoding: .utf8), "in sub\n")
    XCTAssertFalse(FileManager.default.createFile(atPath: mountpoint + "/new", contents: Data()))
    let status = try sandboxMount(["status", mountpoint, "--json"])
    XCTAssertTrue(status.output.contains("\"root\":\"\\/sub\""), status.output)
    XCTAssertTrue(status.output.contains("\"writeBack\":\"off\""), status.output)
    XCTAssertTrue(status.output.contains("\"memoryCacheBytes\":1048576"), status.output)
    let options = mountOptions(of: mountpoint)
    XCTAssertTrue(options.contains("default_permissions"), options)
    XCTAssertTrue(options.hasPrefix("ro,") || options.contains(",ro,"), options)
  }

  func testBadOptionFormsAreOneLine() throws {
    assertOneLine(
      try sandboxMount(["http://127.0.0.1:1", mountpoint, "-o", "token_file"]),
      mentioning: "option 'token_file' needs a value")
    assertOneLine(
      try sandboxMount(["http://127.0.0.1:1", mountpoint, "-o", "read_only=yes"]),
      mentioning: "option 'read_only=yes' takes no value")
  }

  // MARK: mount(8), mount.fuse3 and fstab

  /// mount.fuse3 runs the type's name as a command, found on the PATH mount(8) sets. A name of
  /// this test's own, linked to the built binary, so parallel runs and an installed copy do not
  /// meet. Returns the type for `-t`.
  private func mountType() throws -> String {
    let name = "sandbox-mount-test-\(getpid())"
    let link = "/usr/local/sbin/" + name
    try FileManager.default.createDirectory(
      atPath: "/usr/local/sbin", withIntermediateDirectories: true)
    unlink(link)
    try FileManager.default.createSymbolicLink(
      atPath: link, withDestinationPath: BuiltProducts.executable("sandbox-mount"))
    links.append(link)
    return "fuse." + name
  }

  func testMountDashTRunsThroughMountFuse3() throws {
    guard FileManager.default.isExecutableFile(atPath: "/sbin/mount.fuse3") else {
      throw XCTSkip("mount.fuse3 (fuse3) is needed")
    }
    let agent = try startAgent()
    let type = try mountType()
    // mount(8) runs helpers with its own PATH, so the caller's does not matter.
    let mounted = try runCommand(
      [
        "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "mount", "-t", type, agent.url, mountpoint,
        "-o", "token_file=\(tokenFile),allow_other,root=/sub",
      ], timeout: 60)
    XCTAssertEqual(mounted.status, 0, mounted.error)
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/file.txt", encoding: .utf8), "in sub\n")
    XCTAssertTrue(mountOptions(of: mountpoint).contains("allow_other"))
    XCTAssertEqual(try runCommand(["umount", mountpoint], timeout: 30).status, 0)
    unmount()
    XCTAssertEqual(daemons(), [])

    // The daemon's error is mount's: exit status and the one line on stderr.
    try "wrong-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    let refused = try runCommand(
      ["mount", "-t", type, agent.url, mountpoint, "-o", "token_file=\(tokenFile)"], timeout: 60)
    XCTAssertNotEqual(refused.status, 0)
    XCTAssertTrue(refused.error.contains("sandbox-mount: "), refused.error)
    XCTAssertTrue(refused.error.contains("token"), refused.error)
    XCTAssertFalse(RunningMount.isMounted(mountpoint))
  }

  /// README's fstab line, with this test's URL, mountpoint, type, token and CA, mounts with
  /// `mount -T FILE`; systemd's fstab generator makes an automount with the idle timeout of it.
  func testTheFstabLineOfTheReadmeMounts() throws {
    guard TestCertificates.isAvailable else { throw XCTSkip("openssl is needed") }
    let certificates = try TestCertificates()
    defer { certificates.remove() }
    let agent = try startAgent([
      "--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey,
    ])
    let type = try mountType()
    let example = try readmeFstabLine()
    var fields = example.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    XCTAssertEqual(fields.count, 6, example)
    XCTAssertEqual(fields[2], "fuse.sandbox-mount")
    fields[0] = agent.url
    fields[1] = mountpoint
    fields[2] = type
    fields[3] = fields[3].split(separator: ",").map { option in
      if option.hasPrefix("token_file=") { return "token_file=" + tokenFile }
      if option.hasPrefix("ca_file=") { return "ca_file=" + certificates.caCertificate }
      return String(option)
    }.joined(separator: ",")
    for needed in ["_netdev", "nofail", "x-systemd.automount", "x-systemd.idle-timeout="] {
      XCTAssertTrue(fields[3].contains(needed), "README's line lacks \(needed)")
    }
    let fstab = workDirectory.path + "/fstab"
    try (fields.joined(separator: " ") + "\n").write(
      toFile: fstab, atomically: true, encoding: .utf8)

    let mounted = try runCommand(["mount", "-T", fstab, mountpoint], timeout: 60)
    XCTAssertEqual(mounted.status, 0, mounted.error)
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/sub/file.txt", encoding: .utf8), "in sub\n")
    XCTAssertEqual(try runCommand(["umount", mountpoint], timeout: 30).status, 0)

    let generator = "/lib/systemd/system-generators/systemd-fstab-generator"
    guard FileManager.default.isExecutableFile(atPath: generator) else { return }
    let units = workDirectory.path + "/units"
    try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
    let generated = try runCommand(
      [generator, units, units, units], environment: ["SYSTEMD_FSTAB": fstab], timeout: 30)
    XCTAssertEqual(generated.status, 0, generated.error)
    let unitName = try runCommand(["systemd-escape", "--path", mountpoint]).output
      .trimmingCharacters(in: .whitespacesAndNewlines)
    let automount = try String(
      contentsOfFile: units + "/\(unitName).automount", encoding: .utf8)
    XCTAssertTrue(automount.contains("TimeoutIdleSec="), automount)
    let mountUnit = try String(contentsOfFile: units + "/\(unitName).mount", encoding: .utf8)
    XCTAssertTrue(mountUnit.contains("Type=\(type)"), mountUnit)
    XCTAssertTrue(mountUnit.contains("What=\(agent.url)"), mountUnit)
  }

  /// README's systemd unit for the agent passes `systemd-analyze verify` (with this build's
  /// binary and existing files in place of the example's).
  func testTheAgentUnitOfTheReadmeVerifies() throws {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
      throw XCTSkip("systemd-analyze is needed")
    }
    var unit = try readmeBlock(after: "sandbox-agent.service", language: "ini")
    XCTAssertTrue(unit.contains("ExecStart=/usr/local/bin/sandbox-agent "), unit)
    unit = unit.replacingOccurrences(
      of: "/usr/local/bin/sandbox-agent", with: BuiltProducts.executable("sandbox-agent"))
    let file = workDirectory.path + "/sandbox-agent.service"
    try unit.write(toFile: file, atomically: true, encoding: .utf8)
    let verified = try runCommand(["systemd-analyze", "verify", "--man=no", file], timeout: 60)
    let problems = verified.error.split(separator: "\n").filter { $0.contains("sandbox-agent") }
    XCTAssertTrue(problems.isEmpty, verified.error)
  }

  /// Scripts/install puts both binaries in PREFIX/bin, and a PREFIX off mount's PATH gets a link.
  func testInstallScript() throws {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().path
    let prefix = workDirectory.path + "/prefix"
    let linkDirectory = workDirectory.path + "/sbin"
    let installed = try runCommand(
      [
        repository + "/Scripts/install", "--prefix", prefix, "--from", BuiltProducts.directory,
        "--link-dir", linkDirectory,
      ], timeout: 120)
    XCTAssertEqual(installed.status, 0, installed.error)
    for tool in ["sandbox-mount", "sandbox-agent"] {
      XCTAssertTrue(FileManager.default.isExecutableFile(atPath: prefix + "/bin/" + tool))
    }
    XCTAssertEqual(
      try FileManager.default.destinationOfSymbolicLink(
        atPath: linkDirectory + "/sandbox-mount"), prefix + "/bin/sandbox-mount")
    let help = try runCommand([prefix + "/bin/sandbox-mount", "--help"])
    XCTAssertEqual(help.status, 0)
  }

  // MARK: Helpers

  private func readme() throws -> String {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().path
    return try String(contentsOfFile: repository + "/README.md", encoding: .utf8)
  }

  /// The first line of README.md that is an fstab entry of type fuse.sandbox-mount.
  private func readmeFstabLine() throws -> String {
    let line = try readme().split(separator: "\n").first {
      $0.contains(" fuse.sandbox-mount ") && !$0.hasPrefix("#") && $0.contains("_netdev")
    }
    guard let line else { throw TestSupportError("README.md has no fstab line") }
    return String(line)
  }

  /// The body of the first ```language block after the line mentioning `marker`.
  private func readmeBlock(after marker: String, language: String) throws -> String {
    let text = try readme()
    guard let mention = text.range(of: marker),
      let start = text.range(of: "```\(language)\n", range: mention.upperBound..<text.endIndex),
      let end = text.range(of: "\n```", range: start.upperBound..<text.endIndex)
    else { throw TestSupportError("README.md has no \(language) block after \(marker)") }
    return String(text[start.upperBound..<end.lowerBound]) + "\n"
  }

  /// The options /proc/mounts lists for `path`.
  private func mountOptions(of path: String) -> String {
    let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    let table = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    for line in table.split(separator: "\n") {
      let fields = line.split(separator: " ")
      if fields.count > 3, fields[1] == resolved { return String(fields[3]) }
    }
    return ""
  }

  /// sandbox-mount processes serving this test's mountpoint.
  private func daemons() -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
      guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
        return false
      }
      let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
      return arguments.first?.contains("sandbox-mount") == true && arguments.contains(mountpoint)
    }
  }
}
