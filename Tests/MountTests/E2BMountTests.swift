import Foundation
import TestSupport
import XCTest

/// `sandbox-mount e2b://SANDBOX_ID`: E2B's API (a local stand-in answering the one call) gives the
/// envd token and version, then a real agent with that token is mounted, over plain HTTP or TLS.
final class E2BMountTests: XCTestCase {
  static let sandboxID = "i1b2c3d4e5f6sandbox"
  static let apiKey = "e2b_0123456789abcdef"
  static let envdToken = "envd-token-from-the-api"

  var workDirectory: TemporaryDirectory!
  var root: String { workDirectory.path + "/root" }
  var mountpoint: String { workDirectory.path + "/mnt" }
  var agent: RunningAgent!
  var standIns: [RunningE2BAPIStandIn] = []
  var proxy: RunningTLSProxy?
  var mounts: [RunningMount] = []

  override func setUpWithError() throws {
    try super.setUpWithError()
    workDirectory = try TemporaryDirectory(prefix: "e2b-mount")
    for folder in [root, mountpoint] {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    try "hello from the sandbox\n".write(
      toFile: root + "/hello.txt", atomically: true, encoding: .utf8)
    let tokenFile = workDirectory.path + "/envd-token"
    try Self.envdToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
    agent = try RunningAgent(root: root, arguments: ["--token-file", tokenFile])
  }

  override func tearDown() {
    for mount in mounts { mount.unmount() }
    if RunningMount.isMounted(mountpoint) {
      _ = try? runCommand(["fusermount3", "-uz", mountpoint], timeout: 20)
    }
    proxy?.stop()
    for standIn in standIns { standIn.stop() }
    agent?.stop()
    workDirectory?.remove()
    super.tearDown()
  }

  /// The stand-in, knowing only `sandboxID`, with the agent's token.
  private func startAPI(_ arguments: [String] = []) throws -> RunningE2BAPIStandIn {
    let standIn = try RunningE2BAPIStandIn(
      arguments: [
        "--api-key", Self.apiKey, "--sandbox", Self.sandboxID, "--envd-token", Self.envdToken,
      ] + arguments,
      requestLog: workDirectory.path + "/api-\(standIns.count).log")
    standIns.append(standIn)
    return standIn
  }

  /// The SDK's variables, all set (empty counts as unset) so none leaks in from outside.
  private func e2bEnvironment(
    api: String?, sandboxURL: String?, key: String? = apiKey, debug: Bool = false,
    domain: String? = nil
  ) -> [String: String] {
    [
      "E2B_API_KEY": key ?? "", "E2B_API_URL": api ?? "", "E2B_SANDBOX_URL": sandboxURL ?? "",
      "E2B_DEBUG": debug ? "true" : "", "E2B_DOMAIN": domain ?? "", "SANDBOX_TOKEN": "",
    ]
  }

  private func mount(
    _ url: String = "e2b://\(sandboxID)", arguments: [String] = [], environment: [String: String]
  ) throws -> RunningMount {
    let mount = try RunningMount(
      url: url, mountpoint: mountpoint, arguments: arguments, environment: environment)
    mounts.append(mount)
    return mount
  }

  /// Runs sandbox-mount to completion in the foreground; it must refuse with one line.
  private func assertRefused(
    _ arguments: [String], environment: [String: String], mentioning texts: [String],
    file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let result = try runCommand(
      [BuiltProducts.executable("sandbox-mount")] + arguments + [mountpoint, "-f"],
      environment: environment, timeout: 60)
    XCTAssertNotEqual(result.status, 0, file: file, line: line)
    let lines = result.error.split(separator: "\n")
    XCTAssertEqual(lines.count, 1, "expected one line: \(result.error)", file: file, line: line)
    for text in texts {
      XCTAssertTrue(
        result.error.contains(text), "expected '\(text)' in: \(result.error)", file: file,
        line: line)
    }
    XCTAssertFalse(RunningMount.isMounted(mountpoint), file: file, line: line)
  }

  /// Reads the agent's file through the mount, writes two files and checks the agent's folder.
  private func assertReadsAndWrites(file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/hello.txt", encoding: .utf8),
      "hello from the sandbox\n", file: file, line: line)
    let text = (1...20000).map { "line \($0)\n" }.joined()
    try text.write(toFile: mountpoint + "/notes.txt", atomically: false, encoding: .utf8)
    var random = Data(count: 3 << 20)
    random.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
    try random.write(to: URL(fileURLWithPath: mountpoint + "/blob.bin"))
    let synced = try runCommand(
      [BuiltProducts.executable("sandbox-mount"), "sync", mountpoint], timeout: 60)
    XCTAssertEqual(synced.status, 0, synced.error, file: file, line: line)
    XCTAssertEqual(
      try String(contentsOfFile: root + "/notes.txt", encoding: .utf8), text, file: file,
      line: line)
    XCTAssertEqual(
      try Data(contentsOf: URL(fileURLWithPath: root + "/blob.bin")), random, file: file,
      line: line)
  }

  func testMountsThroughTheAPIAndResumesAPausedSandbox() throws {
    let api = try startAPI(["--paused"])
    _ = try mount(environment: e2bEnvironment(api: api.url, sandboxURL: agent.url))
    try assertReadsAndWrites()
    // As the SDK's Sandbox.connect(id): one POST, the key in X-API-KEY, no timeout asked for.
    let requests = api.requests
    XCTAssertEqual(requests.count, 1)
    XCTAssertEqual(requests.first?["path"], "/v2/sandboxes/\(Self.sandboxID)/connect")
    XCTAssertEqual(requests.first?["apiKey"], Self.apiKey)
    XCTAssertEqual(requests.first?["contentType"], "application/json")
    XCTAssertEqual(requests.first?["body"], "{}")
  }

  func testAPIKeyFileAndSandboxTimeout() throws {
    let api = try startAPI()
    let keyFile = workDirectory.path + "/api-key"
    try "\(Self.apiKey)\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
    // The file wins over a wrong E2B_API_KEY.
    let mount = try mount(
      arguments: ["--api-key-file", keyFile, "--sandbox-timeout", "900"],
      environment: e2bEnvironment(api: api.url, sandboxURL: agent.url, key: "e2b_wrong"))
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/hello.txt", encoding: .utf8),
      "hello from the sandbox\n")
    mount.unmount()
    XCTAssertEqual(api.requests.first?["apiKey"], Self.apiKey)
    XCTAssertEqual(api.requests.first?["body"], "{\"timeout\":900}")
  }

  func testBadAPIKey() throws {
    let api = try startAPI()
    try assertRefused(
      ["e2b://\(Self.sandboxID)"],
      environment: e2bEnvironment(api: api.url, sandboxURL: agent.url, key: "e2b_wrong"),
      mentioning: ["API key", "401"])
  }

  func testMissingAPIKey() throws {
    let api = try startAPI()
    try assertRefused(
      ["e2b://\(Self.sandboxID)"],
      environment: e2bEnvironment(api: api.url, sandboxURL: agent.url, key: nil),
      mentioning: ["E2B_API_KEY"])
    XCTAssertEqual(api.requests.count, 0)
  }

  func testUnknownSandbox() throws {
    let api = try startAPI()
    try assertRefused(
      ["e2b://nosuchsandbox"], environment: e2bEnvironment(api: api.url, sandboxURL: agent.url),
      mentioning: ["nosuchsandbox", "not found", "404"])
  }

  func testUnreachableAPI() throws {
    let refusing = "http://127.0.0.1:\(try freeLoopbackPort())"
    try assertRefused(
      ["e2b://\(Self.sandboxID)"],
      environment: e2bEnvironment(api: refusing, sandboxURL: agent.url),
      mentioning: ["cannot reach the E2B API", "connection refused"])

    let silent = try startAPI(["--hang"])
    let started = Date()
    try assertRefused(
      ["e2b://\(Self.sandboxID)", "--io-timeout", "2"],
      environment: e2bEnvironment(api: silent.url, sandboxURL: agent.url),
      mentioning: ["E2B API", silent.url, "timeout"])
    XCTAssertLessThan(Date().timeIntervalSince(started), 20)
  }

  func testEnvdTooOld() throws {
    let api = try startAPI(["--envd-version", "0.5.3"])
    let environment = e2bEnvironment(api: api.url, sandboxURL: agent.url)
    // Writes need octet-stream uploads (0.5.7); reading alone works from 0.2.6.
    try assertRefused(
      ["e2b://\(Self.sandboxID)"], environment: environment,
      mentioning: ["envd 0.5.3", "too old", "0.5.7", "--read-only"])
    let readOnly = try mount(arguments: ["--read-only"], environment: environment)
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/hello.txt", encoding: .utf8),
      "hello from the sandbox\n")
    readOnly.unmount()

    let ancient = try startAPI(["--envd-version", "0.1.5"])
    try assertRefused(
      ["e2b://\(Self.sandboxID)", "--read-only"],
      environment: e2bEnvironment(api: ancient.url, sandboxURL: agent.url),
      mentioning: ["envd 0.1.5", "too old", "0.2.6"])
  }

  /// envd before 0.4.0 has no default user, so the SDK (and the mount) send E2B's `user`, which
  /// this machine lacks; `--user` overrides it. A current envd gets no user: the template's.
  func testDefaultUserIsTheSandboxes() throws {
    let old = try startAPI(["--envd-version", "0.3.0"])
    let environment = e2bEnvironment(api: old.url, sandboxURL: agent.url)
    try assertRefused(
      ["e2b://\(Self.sandboxID)", "--read-only"], environment: environment,
      mentioning: ["user 'user'"])
    let overridden = try mount(
      arguments: ["--read-only", "--user", "root"], environment: environment)
    XCTAssertTrue(FileManager.default.fileExists(atPath: mountpoint + "/hello.txt"))
    overridden.unmount()
  }

  /// E2B_DEBUG=true: no API call and no token, envd at E2B_SANDBOX_URL (else localhost:49983).
  func testDebugModeSkipsTheAPI() throws {
    let api = try startAPI()
    let tokenless = try RunningAgent(root: root)
    defer { tokenless.stop() }
    _ = try mount(
      environment: e2bEnvironment(api: api.url, sandboxURL: tokenless.url, key: nil, debug: true))
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/hello.txt", encoding: .utf8),
      "hello from the sandbox\n")
    XCTAssertEqual(api.requests.count, 0)
  }

  /// HTTPS as on E2B, through nginx with a self-signed certificate: E2B_DOMAIN alone gives the
  /// API (`api.DOMAIN`) and envd (`49983-ID.DOMAIN`). Refused without --ca-file, with a hint;
  /// reads and writes with it. Then a sandbox whose API answer names its own domain, and a plain
  /// https:// URL.
  func testTLSWithAPrivateCA() throws {
    guard RunningTLSProxy.isAvailable else {
      throw XCTSkip("nginx and openssl are needed (Scripts/test installs them)")
    }
    let api = try startAPI()
    let proxy = try RunningTLSProxy(
      upstream: agent.url, hosts: ["api": api.url, "49983-\(Self.sandboxID)": agent.url],
      folder: workDirectory.path)
    self.proxy = proxy
    let domain = "localhost:\(proxy.port)"
    let environment = e2bEnvironment(api: nil, sandboxURL: nil, domain: domain)
    try assertRefused(
      ["e2b://\(Self.sandboxID)"], environment: environment,
      mentioning: ["https://api.\(domain)", "not trusted", "--ca-file"])
    XCTAssertEqual(api.requests.count, 0)

    let e2b = try mount(arguments: ["--ca-file", proxy.certificate], environment: environment)
    try assertReadsAndWrites()
    e2b.unmount()
    XCTAssertEqual(api.requests.count, 1)

    // The API's `domain` wins over E2B_DOMAIN (here the default, e2b.app) for envd's host.
    let elsewhere = try startAPI(["--domain", domain])
    let moved = try mount(
      arguments: ["--ca-file", proxy.certificate],
      environment: e2bEnvironment(api: elsewhere.url, sandboxURL: nil))
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/hello.txt", encoding: .utf8),
      "hello from the sandbox\n")
    moved.unmount()

    let tokenFile = workDirectory.path + "/envd-token"
    let https = try mount(
      proxy.url, arguments: ["--ca-file", proxy.certificate, "--token-file", tokenFile],
      environment: e2bEnvironment(api: nil, sandboxURL: nil))
    XCTAssertEqual(
      try String(contentsOfFile: mountpoint + "/notes.txt", encoding: .utf8),
      (1...20000).map { "line \($0)\n" }.joined())
    https.unmount()
  }
}
