import Backend
import ExecLayer
import Foundation
import TestSupport
import XCTest

@testable import VercelBackend

/// What the conformance suite cannot see: retries as the SDK makes them, a stopped sandbox, a
/// refused token, and the NDJSON answer's in-band errors.
final class VercelBackendTests: XCTestCase {
  private var children: [ChildProcess] = []
  private var folders: [TemporaryDirectory] = []

  override func tearDown() {
    for child in children { child.stop(grace: 1) }
    for folder in folders { folder.remove() }
    super.tearDown()
  }

  /// A server answering the sandbox lookup with `statuses` in turn (then 200), counting requests:
  /// `STATUS` or `STATUS:RETRY_AFTER`.
  private func scriptedServer(_ statuses: [String]) throws -> (url: String, count: () -> Int) {
    let folder = try TemporaryDirectory(prefix: "vercel-scripted")
    folders.append(folder)
    let log = folder.path + "/requests"
    let script = #"""
      import http.server, sys, json
      answers = sys.argv[2:]
      log = sys.argv[1]
      class H(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              with open(log, "a") as f: f.write(self.path + "\n")
              n = sum(1 for _ in open(log))
              answer = answers[n - 1] if n <= len(answers) else "200"
              status, _, retry = answer.partition(":")
              self.send_response(int(status))
              if retry: self.send_header("Retry-After", retry)
              if status == "200":
                  body = json.dumps({"sandbox": {"name": "s", "currentSessionId": "sbx_1",
                      "status": "running"}, "session": {"id": "sbx_1", "status": "running"}})
              else:
                  body = json.dumps({"error": {"code": "busy", "message": "try again"}})
              self.send_header("Content-Type", "application/json")
              self.send_header("Content-Length", str(len(body)))
              self.end_headers()
              self.wfile.write(body.encode())
          def log_message(self, *args): pass
      server = http.server.HTTPServer(("127.0.0.1", 0), H)
      print("listening on http://127.0.0.1:%d" % server.server_port, flush=True)
      server.serve_forever()
      """#
    let child = try ChildProcess(
      executable: "/usr/bin/python3", arguments: ["-c", script, log] + statuses)
    children.append(child)
    var url: String?
    _ = child.waitFor(timeout: 10) {
      url = child.standardOutput.split(separator: "\n").first { $0.hasPrefix("listening on ") }
        .map { String($0.dropFirst("listening on ".count)) }
      return url != nil || !child.isRunning
    }
    guard let url else { throw TestSupportError("no server: \(child.standardError)") }
    let count = {
      ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count
    }
    return (url, count)
  }

  private func client(_ url: String) throws -> VercelClient {
    var configuration = VercelConfiguration(sandboxName: "s", token: "t")
    configuration.apiURL = url + "/api"
    configuration.teamID = "team_1"
    configuration.retryDelays = [0.05, 0.1]
    return try VercelClient(configuration: configuration)
  }

  func testA503AndA429AreRetried() async throws {
    let server = try scriptedServer(["503", "429:0"])
    let client = try client(server.url)
    defer { client.shutdown() }
    let session = try await client.lookUpSession()
    XCTAssertEqual(session, "sbx_1")
    XCTAssertEqual(server.count(), 3)
  }

  func testThreeFailuresGiveUpWithEIO() async throws {
    let server = try scriptedServer(["500", "502", "503", "500"])
    let client = try client(server.url)
    defer { client.shutdown() }
    await assertRemoteError(EIO) { try await client.lookUpSession() }
    XCTAssertEqual(server.count(), 3, "two retries, as the SDK")
  }

  func testALongRetryAfterIsNotWaitedFor() async throws {
    let server = try scriptedServer(["429:60"])
    let client = try client(server.url)
    defer { client.shutdown() }
    let started = ContinuousClock.now
    await assertRemoteError(EIO) { try await client.lookUpSession() }
    XCTAssertEqual(server.count(), 1)
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
  }

  func testAStoppedSandboxIsAClearEIO() async throws {
    let root = try TemporaryDirectory(prefix: "vercel-stopped")
    folders.append(root)
    let agent = try RunningAgent(root: root.path, arguments: ["--protocol", "vercel"])
    defer { agent.stop() }
    var configuration = VercelConfiguration(sandboxName: "s", token: "t")
    configuration.apiURL = agent.url + "/api"
    let backend = try await VercelBackend.connect(configuration: configuration)
    defer { backend.shutdown() }
    _ = try await backend.attributes(of: "/")
    let session = try await backend.client.lookUpSession()
    let stop = try runCommand(
      ["curl", "-sf", "-X", "POST", agent.url + "/api/v2/sandboxes/sessions/\(session)/stop"])
    XCTAssertEqual(stop.status, 0, stop.error)
    for operation in [
      { _ = try await backend.attributes(of: "/") },
      { _ = try await backend.download("/x", expectedSize: 1, to: root.path + "/copy") },
    ] as [@Sendable () async throws -> Void] {
      do {
        try await operation()
        XCTFail("a stopped sandbox answered")
      } catch let error as RemoteError {
        XCTAssertEqual(error.errno, EIO)
        XCTAssertTrue(error.message.contains("is stopped"), error.message)
      }
    }
  }

  func testAStreamErrorRecordIsEIO() throws {
    let body = Array(
      """
      {"command":{"id":"cmd_1","exitCode":null}}
      {"stream":"stdout","data":"partial"}
      {"stream":"error","data":{"code":"sandbox_stopped","message":"gone"}}

      """.utf8)
    XCTAssertThrowsError(try VercelExecutor.outcome(body, limit: 1 << 20, context: "cmd")) {
      XCTAssertEqual(($0 as? RemoteError)?.errno, EIO)
    }
    let ended = Array(
      """
      {"command":{"id":"cmd_1","exitCode":null}}
      {"stream":"stdout","data":"a\\u00e9"}
      {"stream":"stderr","data":"b"}
      {"command":{"id":"cmd_1","exitCode":3}}

      """.utf8)
    let outcome = try VercelExecutor.outcome(ended, limit: 1 << 20, context: "cmd")
    XCTAssertEqual(outcome.stdout, Array("aé".utf8))
    XCTAssertEqual(outcome.stderr, Array("b".utf8))
    XCTAssertEqual(outcome.exitCode, 3)
  }

  func testSudoAndStdinShapeTheCommand() throws {
    let plain = VercelExecutor.start(ProcessCommand("/bin/sh", ["-c", "true"]), sudo: false)
    XCTAssertEqual(plain.sudo, false)
    XCTAssertEqual(plain.wait, true)
    XCTAssertEqual(plain.attachStdin, false)
    XCTAssertEqual(plain.env, ["LC_ALL": "C"])
    let sudo = VercelExecutor.start(
      ProcessCommand("cat", [], standardInput: [1], timeout: 2.5), sudo: true)
    XCTAssertEqual(sudo.sudo, true)
    XCTAssertEqual(sudo.wait, false, "stdin: the command starts, then its stdin is sent")
    XCTAssertEqual(sudo.attachStdin, true)
    XCTAssertEqual(sudo.timeout, 2500)
    let json = String(decoding: try JSONEncoder().encode(sudo), as: UTF8.self)
    XCTAssertTrue(json.contains("\"sudo\":true"), json)
  }

  func testCredentialsAreFoundAsTheSDKFindsThem() throws {
    // A JWT whose payload is {"owner_id":"team_jwt","project_id":"prj_jwt"}.
    let payload = Data(#"{"owner_id":"team_jwt","project_id":"prj_jwt"}"#.utf8)
      .base64EncodedString().replacingOccurrences(of: "=", with: "")
    let jwt = "eyJhbGciOiJub25lIn0.\(payload).sig"
    var found = try VercelCredentials.resolve(
      token: nil, team: nil, project: nil,
      environment: ["VERCEL_OIDC_TOKEN": jwt, "VERCEL_TOKEN": "plain"])
    XCTAssertEqual(found, VercelCredentials(token: jwt, teamID: "team_jwt", projectID: "prj_jwt"))
    found = try VercelCredentials.resolve(
      token: nil, team: "team_option", project: nil,
      environment: ["VERCEL_TOKEN": "plain", "VERCEL_PROJECT_ID": "prj_env"])
    XCTAssertEqual(
      found, VercelCredentials(token: "plain", teamID: "team_option", projectID: "prj_env"))
    found = try VercelCredentials.resolve(
      token: "from-file", team: nil, project: nil, environment: ["VERCEL_TOKEN": "plain"])
    XCTAssertEqual(found, VercelCredentials(token: "from-file", teamID: nil, projectID: nil))
    XCTAssertThrowsError(
      try VercelCredentials.resolve(
        token: nil, team: nil, project: nil, environment: ["VERCEL_TOKEN": " "]))
  }
}
