import Foundation
import Glibc
import TestSupport
import XCTest

/// The findings of a probe with hostile input (issue 18), each of which today's agent got wrong.
final class AgentHardeningTests: AgentTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }

  func testNULInARPCPathIsRefusedNotCutAtTheNUL() throws {
    try put("dir/keep.txt", Data("k".utf8))
    try put("a.txt", Data("a".utf8))
    // Checked with the NUL, the kernel would stat "/.." (the root) and move to "/dir".
    let stat = try client.rpc("Stat", #"{"path":"/..\u0000/x"}"#)
    XCTAssertEqual(stat.status, 400, stat.text)
    XCTAssertEqual(stat.json["code"] as? String, "invalid_argument")
    XCTAssertTrue((stat.json["message"] as? String ?? "").contains("NUL"), stat.text)
    let move = try client.rpc("Move", #"{"source":"/a.txt","destination":"/dir\u0000/x"}"#)
    XCTAssertEqual(move.status, 400, move.text)
    XCTAssertTrue(FileManager.default.fileExists(atPath: hostPath("a.txt")))
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("dir/x")))
    let list = try client.rpc("ListDir", #"{"path":"/dir\u0000anything"}"#)
    XCTAssertEqual(list.status, 400, list.text)
  }

  func testNULInAFilesQueryIsRefused() throws {
    try put("a.txt", Data("a".utf8))
    XCTAssertEqual(try client.request("/files?path=/a.txt%00.png").status, 400)
    try FileManager.default.createDirectory(
      atPath: hostPath("dir"), withIntermediateDirectories: true)
    let upload = try client.request(
      "/files?path=/dir%00/y", method: "POST",
      headers: ["Content-Type: application/octet-stream"], body: Data("y".utf8))
    XCTAssertEqual(upload.status, 400, upload.text)
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: hostPath("dir")), [])
  }

  func testDotDotAboveTheRootIsRefusedForHomeAndRelativePaths() throws {
    let climb = String(repeating: "../", count: 8)
    for path in ["~/\(climb)outside/x", "\(climb)outside/y", "~/\(climb)"] {
      let upload = try client.upload(path, Data("x".utf8))
      XCTAssertEqual(upload.status, 400, "\(path): \(upload.text)")
      XCTAssertTrue(upload.text.contains("escapes"), upload.text)
      let rpc = try client.rpc("MakeDir", "{\"path\":\"\(path)/made\"}")
      XCTAssertEqual(rpc.status, 400, "\(path): \(rpc.text)")
    }
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path), [])
  }

  func testDotDotInAMultipartFilenameIsRefused() throws {
    let boundary = "b0undary"
    let body =
      "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../../../../outside/z\"\r\n"
      + "Content-Type: application/octet-stream\r\n\r\nzzz\r\n--\(boundary)--\r\n"
    let reply = try client.request(
      "/files", method: "POST",
      headers: ["Content-Type: multipart/form-data; boundary=\(boundary)"],
      body: Data(body.utf8))
    XCTAssertEqual(reply.status, 400, reply.text)
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path), [])
  }

  func testBadChunkSizeIs400() throws {
    let reply = try agent.raw(
      "POST", "/filesystem.Filesystem/Stat",
      headers: [
        "Content-Type: application/json", "Connect-Protocol-Version: 1",
        "Transfer-Encoding: chunked",
      ],
      body: Array("zz\r\n{\"path\":\"/\"}\r\n0\r\n\r\n".utf8), framed: true)
    XCTAssertEqual(reply.status, 400, reply.text)
  }

  func testControlCharactersInLogLinesAreEscaped() throws {
    // Two parts to one query path: the duplicate is logged with the path.
    let boundary = "b0undary"
    let part =
      "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n"
    let body = part + part + "--\(boundary)--\r\n"
    _ = try client.request(
      "/files?path=/dup%00%0AFORGED-LOG-LINE", method: "POST",
      headers: ["Content-Type: multipart/form-data; boundary=\(boundary)"], body: Data(body.utf8))
    _ = try client.request(
      "/files?path=/dup2%0AFORGED-LOG-LINE", method: "POST",
      headers: ["Content-Type: multipart/form-data; boundary=\(boundary)"], body: Data(body.utf8))
    Thread.sleep(forTimeInterval: 0.2)
    let log = agent.child.standardError
    XCTAssertTrue(log.contains("FORGED-LOG-LINE"), log)
    XCTAssertFalse(log.contains("\u{0}"), log)
    for line in log.split(separator: "\n") {
      XCTAssertFalse(line.hasPrefix("FORGED-LOG-LINE"), log)
    }
  }

  func testEnvsShowsTheProcessEnvironmentNotTheAgents() throws {
    agent.stop()
    agent = try RunningAgent(
      root: root.path,
      environment: [
        "PATH": "/usr/bin:/bin", "SANDBOX_AGENT_TOKEN": "secret-token-123",
        "AGENT_ONLY_SECRET": "do-not-show",
      ])
    let reply = try client.request("/envs", headers: ["X-Access-Token: secret-token-123"])
    XCTAssertEqual(reply.status, 200)
    XCTAssertFalse(reply.text.contains("do-not-show"), reply.text)
    XCTAssertFalse(reply.text.contains("secret-token-123"), reply.text)
    XCTAssertEqual(reply.json["PATH"] as? String, "/usr/bin:/bin")
    XCTAssertNotNil(reply.json["HOME"])
    let canonical = try XCTUnwrap(realpath(root.path, nil))
    defer { free(canonical) }
    XCTAssertEqual(reply.json["SANDBOX_ROOT"] as? String, String(cString: canonical))
  }

  func testWhitespaceTokenIsNoToken() throws {
    let result = try runCommand(
      [BuiltProducts.executable("sandbox-agent"), "--listen", "0.0.0.0:0", "--root", "/tmp"],
      environment: ["SANDBOX_AGENT_TOKEN": " \t "], timeout: 30)
    XCTAssertNotEqual(result.status, 0, result.output)
    XCTAssertTrue(result.error.contains("refusing to listen on non-loopback address"), result.error)
  }
}

/// Request heads that never finish (with `--request-head-timeout 2`: the option is honoured).
final class AgentConnectionLimitTests: AgentTestCase {
  override var agentArguments: [String] { ["--request-head-timeout", "2"] }

  func testHalfSentHeadsAreClosedAfterTheHeadTimeout() throws {
    var connections: [RawConnection] = []
    for index in 0..<200 {
      let connection = try RawConnection(url: agent.url)
      // Half of them send nothing at all, half an unfinished head.
      if index % 2 == 0 { try connection.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ") }
      connections.append(connection)
    }
    let start = Date()
    var open = connections
    // Slack for a loaded box, yet well short of the default 10 s.
    while !open.isEmpty && Date().timeIntervalSince(start) < 8 {
      open = open.filter { !$0.isClosed(within: 0.001) }
      if !open.isEmpty { Thread.sleep(forTimeInterval: 0.25) }
    }
    XCTAssertEqual(open.count, 0, "connections still open after 8 s")
    XCTAssertGreaterThan(Date().timeIntervalSince(start), 1)
    XCTAssertEqual(try client.request("/health").status, 204)
  }

  func testAKeptAliveConnectionIsNotCutBetweenRequests() throws {
    let connection = try RawConnection(url: agent.url)
    for _ in 0..<3 {
      try connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
      XCTAssertEqual(try connection.readResponse().status, 204)
    }
    // Idle, not sending a head: the idle timeout's business, not the head timeout's.
    XCTAssertFalse(connection.isClosed(within: 5))
    try connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    XCTAssertEqual(try connection.readResponse().status, 204)
  }
}

/// `--max-connections`: past the cap, a connection waits in the backlog until one closes.
final class AgentConnectionCapTests: AgentTestCase {
  override var agentArguments: [String] { ["--max-connections", "4"] }

  func testConnectionsPastTheCapWaitForOneToClose() throws {
    var held: [RawConnection] = []
    for _ in 0..<4 {
      let connection = try RawConnection(url: agent.url)
      try connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
      XCTAssertEqual(try connection.readResponse().status, 204)
      held.append(connection)
    }
    let waiting = try RawConnection(url: agent.url)
    try waiting.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    XCTAssertFalse(waiting.isReadable(within: 1.5), "answered past the cap")
    held.removeFirst()  // closes it
    XCTAssertTrue(waiting.isReadable(within: 10))
    XCTAssertEqual(try waiting.readResponse().status, 204)
  }
}

/// Watchers are bounded: their event buffers, and their number per connection and in all.
final class AgentWatcherLimitTests: AgentTestCase {
  func rpc(_ connection: RawConnection, _ method: String, _ json: String) throws -> RawResponse {
    let body = Array(json.utf8)
    try connection.send(
      "POST /filesystem.Filesystem/\(method) HTTP/1.1\r\nHost: x\r\n"
        + "Content-Type: application/json\r\nConnect-Protocol-Version: 1\r\n"
        + "Content-Length: \(body.count)\r\n\r\n")
    try connection.send(body)
    return try connection.readResponse()
  }

  func testPollingWatcherBufferIsBoundedWithAnOverflowEvent() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("w"), withIntermediateDirectories: true)
    let created = try client.rpc("CreateWatcher", #"{"path":"/w"}"#)
    let id = try XCTUnwrap(created.json["watcherId"] as? String, created.text)
    for index in 0..<6000 {
      let fd = open(hostPath("w/f\(index)"), O_CREAT | O_WRONLY, 0o644)
      close(fd)
    }
    Thread.sleep(forTimeInterval: 1)
    let events = try client.rpc("GetWatcherEvents", "{\"watcherId\":\"\(id)\"}")
    let list = events.json["events"] as? [[String: Any]] ?? []
    XCTAssertLessThanOrEqual(list.count, 4097, "unbounded buffer")
    let last = try XCTUnwrap(list.last)
    XCTAssertEqual(last["type"] as? String, "EVENT_TYPE_UNSPECIFIED", "\(last)")
    XCTAssertEqual(last["name"] as? String, "")
    // Later events come again, without an overflow.
    close(open(hostPath("w/after"), O_CREAT | O_WRONLY, 0o644))
    Thread.sleep(forTimeInterval: 0.5)
    let again = try client.rpc("GetWatcherEvents", "{\"watcherId\":\"\(id)\"}")
    let names = (again.json["events"] as? [[String: Any]] ?? []).compactMap {
      $0["name"] as? String
    }
    XCTAssertEqual(names, ["after"], again.text)
  }

  func testWatchersPerConnectionAndInAllAreBounded() throws {
    let connection = try RawConnection(url: agent.url)
    var made = 0
    var refusal: RawResponse?
    for _ in 0..<40 {
      let reply = try rpc(connection, "CreateWatcher", #"{"path":"/"}"#)
      if reply.status != 200 {
        refusal = reply
        break
      }
      made += 1
    }
    XCTAssertEqual(made, 16)
    XCTAssertEqual(refusal?.status, 429)
    XCTAssertEqual(refusal?.json["code"] as? String, "resource_exhausted")
    // Others connections get theirs, up to the total.
    var total = made
    for _ in 0..<200 {
      let reply = try client.rpc("CreateWatcher", #"{"path":"/"}"#)
      if reply.status != 200 {
        XCTAssertEqual(reply.status, 429, reply.text)
        break
      }
      total += 1
    }
    XCTAssertLessThanOrEqual(total, 64)
    XCTAssertGreaterThanOrEqual(total, 17)
  }
}
