import Foundation
import TestSupport
import XCTest

/// `sandbox-agent --protocol langsmith`: LangSmith's control-plane lookup and dataplane file
/// routes over the served folder, which stands for the box's `/`.
class LangSmithTestCase: AgentTestCase {
  override var agentArguments: [String] { ["--protocol", "langsmith"] }

  func download(_ path: String, headers: [String] = [], method: String = "GET") throws
    -> AgentClient.Reply
  {
    var extra: [String] = []
    // curl waits for a body after HEAD unless told it is a HEAD.
    if method == "HEAD" { extra = ["-I"] }
    return try client.request(
      "/download?path=\(AgentClient.encode(path))", method: method == "HEAD" ? "HEAD" : method,
      headers: headers, extra: extra)
  }

  func post(_ route: String, _ body: [String: Any], headers: [String] = []) throws
    -> AgentClient.Reply
  {
    try client.request(
      route, method: "POST", headers: ["Content-Type: application/json"] + headers,
      body: JSONSerialization.data(withJSONObject: body))
  }

  func errorType(_ reply: AgentClient.Reply) -> String? {
    (reply.json["detail"] as? [String: Any])?["error"] as? String
  }
}

final class LangSmithRoutesTests: LangSmithTestCase {
  func testBoxLookupPointsTheDataplaneAtTheAgent() throws {
    let reply = try client.request("/api/v2/sandboxes/boxes/demo")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.json["name"] as? String, "demo")
    XCTAssertEqual(reply.json["status"] as? String, "ready")
    XCTAssertEqual(reply.json["dataplane_url"] as? String, agent.url)
  }

  func testDownloadServesRangesWithAStrongETag() throws {
    let data = randomData(100_000)
    try put("a/file.bin", data)
    let whole = try download("/a/file.bin")
    XCTAssertEqual(whole.status, 200)
    XCTAssertEqual(whole.body, data)
    let etag = try XCTUnwrap(whole.headers["etag"])
    XCTAssertTrue(etag.hasPrefix("\""), etag)
    XCTAssertNotNil(whole.headers["last-modified"])

    let part = try download("/a/file.bin", headers: ["Range: bytes=10-19"])
    XCTAssertEqual(part.status, 206)
    XCTAssertEqual(part.body, data[10..<20])
    XCTAssertEqual(part.headers["content-range"], "bytes 10-19/100000")

    let suffix = try download("/a/file.bin", headers: ["Range: bytes=-5"])
    XCTAssertEqual(suffix.status, 206)
    XCTAssertEqual(suffix.body, data.suffix(5))

    let clamped = try download("/a/file.bin", headers: ["Range: bytes=99990-200000"])
    XCTAssertEqual(clamped.status, 206)
    XCTAssertEqual(clamped.body, data.suffix(10))
  }

  func testIfNoneMatchAnswers304UntilTheFileChanges() throws {
    try put("f.txt", Data("one".utf8))
    let etag = try XCTUnwrap(try download("/f.txt").headers["etag"])
    let unchanged = try download("/f.txt", headers: ["If-None-Match: \(etag)"])
    XCTAssertEqual(unchanged.status, 304)
    XCTAssertEqual(unchanged.headers["etag"], etag)
    XCTAssertTrue(unchanged.body.isEmpty)

    try put("f.txt", Data("two!".utf8))
    let changed = try download("/f.txt", headers: ["If-None-Match: \(etag)"])
    XCTAssertEqual(changed.status, 200)
    XCTAssertEqual(changed.text, "two!")
  }

  func testAStaleIfRangeSendsTheWholeFile() throws {
    try put("f.txt", Data("0123456789".utf8))
    let etag = try XCTUnwrap(try download("/f.txt").headers["etag"])
    let honoured = try download("/f.txt", headers: ["Range: bytes=2-3", "If-Range: \(etag)"])
    XCTAssertEqual(honoured.status, 206)
    XCTAssertEqual(honoured.text, "23")
    let stale = try download("/f.txt", headers: ["Range: bytes=2-3", "If-Range: \"other\""])
    XCTAssertEqual(stale.status, 200)
    XCTAssertEqual(stale.text, "0123456789")
  }

  func testARangePastTheEndIs416WithTheSize() throws {
    try put("f.txt", Data("0123456789".utf8))
    let reply = try download("/f.txt", headers: ["Range: bytes=10-"])
    XCTAssertEqual(reply.status, 416)
    XCTAssertEqual(reply.headers["content-range"], "bytes */10")
  }

  func testHeadIsAStat() throws {
    try put("f.txt", Data("0123456789".utf8))
    let reply = try download("/f.txt", method: "HEAD")
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.headers["content-length"], "10")
    XCTAssertNotNil(reply.headers["etag"])
    XCTAssertNotNil(reply.headers["last-modified"])
    XCTAssertEqual(try download("/missing", method: "HEAD").status, 404)
  }

  func testMissingFilesAndEscapesAnswerLangSmithErrors() throws {
    let missing = try download("/nope.txt")
    XCTAssertEqual(missing.status, 404)
    XCTAssertEqual(errorType(missing), "FileNotFound")
    XCTAssertNotNil((missing.json["detail"] as? [String: Any])?["message"] as? String)

    let escape = try download("/../../etc/passwd")
    XCTAssertEqual(escape.status, 400)
    XCTAssertEqual(errorType(escape), "InvalidPath")

    // A symlink cannot lead out of the root either.
    try FileManager.default.createSymbolicLink(
      atPath: hostPath("out"), withDestinationPath: "/etc/passwd")
    XCTAssertEqual(try download("/out").status, 404)

    try FileManager.default.createDirectory(
      atPath: hostPath("dir"), withIntermediateDirectories: true)
    let directory = try download("/dir")
    XCTAssertEqual(directory.status, 400)
    XCTAssertEqual(errorType(directory), "ReadError")
  }

  func testUploadWritesTheFilePartCreatingParents() throws {
    let folder = try TemporaryDirectory(prefix: "ls-upload")
    defer { folder.remove() }
    let data = randomData(300_000)
    try data.write(to: URL(fileURLWithPath: folder.path + "/payload"))
    let reply = try client.request(
      "/upload?path=\(AgentClient.encode("/deep/er/file.bin"))", method: "POST",
      extra: ["-F", "file=@\(folder.path)/payload;filename=file;type=application/octet-stream"])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: hostPath("deep/er/file.bin"))), data)

    let relative = try client.request(
      "/upload?path=notes.txt", method: "POST", extra: ["-F", "file=@\(folder.path)/payload"])
    XCTAssertEqual(relative.status, 200, relative.text)
    XCTAssertTrue(FileManager.default.fileExists(atPath: hostPath("home/user/notes.txt")))

    let escape = try client.request(
      "/upload?path=/../x", method: "POST", extra: ["-F", "file=@\(folder.path)/payload"])
    XCTAssertEqual(escape.status, 400)
  }

  func testGlobListsMatchesWithSizesAndDirectories() throws {
    try put("w/a.py", Data("print(1)\n".utf8))
    try put("w/b.txt", Data("hello".utf8))
    try put("w/sub/c.py", Data("x = 'needle'\n".utf8))
    let top = try post("/glob", ["pattern": "*", "path": "/w"])
    XCTAssertEqual(top.status, 200, top.text)
    let matches = try XCTUnwrap(top.json["matches"] as? [[String: Any]])
    XCTAssertEqual(matches.map { $0["path"] as? String }, ["/w/a.py", "/w/b.txt", "/w/sub"])
    XCTAssertEqual(matches.map { $0["is_dir"] as? Bool }, [false, false, true])
    XCTAssertEqual(matches[1]["size_bytes"] as? Int, 5)
    XCTAssertNotNil(matches[0]["modified_at"] as? String)
    XCTAssertEqual(top.json["truncated"] as? Bool, false)

    let deep = try post("/glob", ["pattern": "**/*.py", "path": "/w"])
    XCTAssertEqual(
      (deep.json["matches"] as? [[String: Any]])?.map { $0["path"] as? String },
      ["/w/a.py", "/w/sub/c.py"])

    let limited = try post("/glob", ["pattern": "*", "path": "/w", "limit": 2])
    XCTAssertEqual((limited.json["matches"] as? [Any])?.count, 2)
    XCTAssertEqual(limited.json["truncated"] as? Bool, true)

    let missing = try post("/glob", ["pattern": "*", "path": "/nowhere"])
    XCTAssertEqual(missing.status, 404)
    XCTAssertEqual(errorType(missing), "FileNotFound")
  }

  func testGrepFindsLiteralLines() throws {
    try put("w/a.py", Data("one\nneedle here\nthree\n".utf8))
    try put("w/sub/c.txt", Data("needle again\n".utf8))
    let all = try post("/grep", ["pattern": "needle", "path": "/w"])
    XCTAssertEqual(all.status, 200, all.text)
    let matches = try XCTUnwrap(all.json["matches"] as? [[String: Any]])
    XCTAssertEqual(matches.count, 2)
    XCTAssertEqual(matches[0]["path"] as? String, "/w/a.py")
    XCTAssertEqual(matches[0]["line"] as? Int, 2)
    XCTAssertEqual(matches[0]["text"] as? String, "needle here")
    let filtered = try post("/grep", ["pattern": "needle", "path": "/w", "glob": "*.txt"])
    XCTAssertEqual(
      (filtered.json["matches"] as? [[String: Any]])?.map { $0["path"] as? String },
      ["/w/sub/c.txt"])
  }
}

/// With a token, every route wants it in `X-Api-Key`.
final class LangSmithAuthTests: LangSmithTestCase {
  override var agentEnvironment: [String: String]? { ["SANDBOX_AGENT_TOKEN": "ls-key"] }

  func testTheAPIKeyIsRequired() throws {
    try put("f.txt", Data("x".utf8))
    let missing = try download("/f.txt")
    XCTAssertEqual(missing.status, 401)
    XCTAssertEqual(errorType(missing), "Unauthorized")
    XCTAssertEqual(try download("/f.txt", headers: ["X-Api-Key: wrong"]).status, 401)
    XCTAssertEqual(try download("/f.txt", headers: ["X-Api-Key: ls-key"]).status, 200)
    XCTAssertEqual(try client.request("/api/v2/sandboxes/boxes/b").status, 401)
  }
}
