import Foundation
import TestSupport
import XCTest

/// `POST /files`: raw and multipart bodies, gzip, truncate in place, envd's answers and errors.
final class AgentUploadTests: AgentTestCase {
  func testRawUploadCreatesParentsAndAnswersEnvdArray() throws {
    let data = randomData(2 * 1024 * 1024 + 3)
    let reply = try client.upload("/a/b/c/file.bin", data)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.text, #"[{"name":"file.bin","path":"/a/b/c/file.bin","type":"file"}]"#)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: hostPath("a/b/c/file.bin"))), data)
    let attributes = try FileManager.default.attributesOfItem(atPath: hostPath("a/b"))
    XCTAssertEqual(
      (attributes[.posixPermissions] as? Int).map { $0 & 0o777 }, 0o755 & ~currentUmask())
    let file = try FileManager.default.attributesOfItem(atPath: hostPath("a/b/c/file.bin"))
    XCTAssertEqual((file[.posixPermissions] as? Int).map { $0 & 0o777 }, 0o666 & ~currentUmask())
  }

  func testOverwriteTruncatesInPlaceKeepingTheInode() throws {
    let path = try put("f.txt", Data(String(repeating: "old content ", count: 1000).utf8))
    XCTAssertEqual(chmod(path, 0o640), 0)
    var before = stat()
    XCTAssertEqual(stat(path, &before), 0)
    XCTAssertEqual(try client.upload("/f.txt", Data("new".utf8)).status, 200)
    var after = stat()
    XCTAssertEqual(stat(path, &after), 0)
    XCTAssertEqual(before.st_ino, after.st_ino)
    XCTAssertEqual(after.st_mode & 0o777, 0o640)
    XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
  }

  func testEmptyBodyTruncates() throws {
    let path = try put("f.txt", Data("something".utf8))
    XCTAssertEqual(try client.upload("/f.txt", Data()).status, 200)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)).count, 0)
  }

  func testDirectoryTargetIs400() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("d"), withIntermediateDirectories: true)
    let reply = try client.upload("/d", Data("x".utf8))
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(reply.json["message"] as? String, "path is a directory: /d")
  }

  func testFileInThePathIs400() throws {
    try put("f", Data("x".utf8))
    let reply = try client.upload("/f/g", Data("x".utf8))
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(
      reply.json["message"] as? String, "error ensuring directories: path is a file: /f")
  }

  func testRawUploadNeedsPathAndKnownContentType() throws {
    let missing = try client.request(
      "/files", method: "POST", headers: ["Content-Type: application/octet-stream"],
      body: Data("x".utf8))
    XCTAssertEqual(missing.status, 400)
    XCTAssertEqual(
      missing.json["message"] as? String, "path query parameter is required for raw body upload")
    let wrongType = try client.request(
      "/files?path=/x", method: "POST", headers: ["Content-Type: text/plain"], body: Data("x".utf8))
    XCTAssertEqual(wrongType.status, 400)
    XCTAssertTrue(
      (wrongType.json["message"] as? String ?? "").hasPrefix("unsupported content type: text/plain")
    )
  }

  func testGzipUploadIsDecoded() throws {
    let data = randomData(1024 * 1024) + Data(String(repeating: "z", count: 500_000).utf8)
    let plain = try put("source.bin", data)
    XCTAssertEqual(try runCommand(["gzip", "-k", plain]).status, 0)
    let compressed = try Data(contentsOf: URL(fileURLWithPath: plain + ".gz"))
    let reply = try client.upload("/out.bin", compressed, headers: ["Content-Encoding: gzip"])
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: hostPath("out.bin"))), data)
  }

  func testBadGzipAndUnknownEncodingAre400() throws {
    let bad = try client.upload("/x", Data("not gzip".utf8), headers: ["Content-Encoding: gzip"])
    XCTAssertEqual(bad.status, 400)
    XCTAssertTrue((bad.json["message"] as? String ?? "").contains("gzip: invalid header"))
    let unknown = try client.upload("/x", Data("x".utf8), headers: ["Content-Encoding: br"])
    XCTAssertEqual(unknown.status, 400)
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("x")))
  }

  func testMultipartWritesEveryFilePart() throws {
    let first = randomData(700_000)
    let firstPath = try put("src/one.bin", first)
    let secondPath = try put("src/two.txt", Data("second".utf8))
    let reply = try client.request(
      "/files", method: "POST",
      extra: [
        "-F", "file=@\(firstPath);filename=/up/one.bin", "-F", "note=ignored",
        "-F", "file=@\(secondPath);filename=/up/deeper/two.txt",
      ])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(
      reply.jsonArray.map { $0["path"] as? String }, ["/up/one.bin", "/up/deeper/two.txt"])
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: hostPath("up/one.bin"))), first)
    XCTAssertEqual(
      try String(contentsOfFile: hostPath("up/deeper/two.txt"), encoding: .utf8), "second")
  }

  func testMultipartWithPathParameter() throws {
    let source = try put("src.txt", Data("content".utf8))
    let reply = try client.request(
      "/files?path=/target.txt", method: "POST",
      extra: ["-F", "file=@\(source);filename=ignored.txt"])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(try String(contentsOfFile: hostPath("target.txt"), encoding: .utf8), "content")
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("ignored.txt")))
  }

  func testMultipartTwoPartsToOnePathIs400() throws {
    let source = try put("src.txt", Data("content".utf8))
    let reply = try client.request(
      "/files?path=/same.txt", method: "POST",
      extra: ["-F", "file=@\(source)", "-F", "file=@\(source)"])
    XCTAssertEqual(reply.status, 400)
    XCTAssertTrue(
      (reply.json["message"] as? String ?? "").hasPrefix("you cannot upload multiple files"))
  }

  func testInterruptedUploadLeavesAgentServing() throws {
    let bodyPath = try put("src.bin", randomData(8 * 1024 * 1024))
    let curl = try ChildProcess(
      executable: "/usr/bin/curl",
      arguments: [
        "-sS", "--limit-rate", "512K", "-H", "Content-Type: application/octet-stream",
        "--data-binary", "@" + bodyPath, agent.url + "/files?path=/partial.bin",
      ])
    XCTAssertTrue(
      curl.waitFor(timeout: 20) {
        ((try? FileManager.default.attributesOfItem(atPath: self.hostPath("partial.bin")))?[.size]
          as? Int ?? 0) > 0
      })
    kill(curl.process.processIdentifier, SIGKILL)
    curl.waitForExit(timeout: 5)
    XCTAssertEqual(try client.request("/health").status, 204)
    let size =
      (try FileManager.default.attributesOfItem(atPath: hostPath("partial.bin")))[.size] as? Int
    XCTAssertLessThan(size ?? 0, 8 * 1024 * 1024)
    XCTAssertEqual(try client.upload("/after.txt", Data("ok".utf8)).status, 200)
    XCTAssertEqual(try String(contentsOfFile: hostPath("after.txt"), encoding: .utf8), "ok")
    XCTAssertTrue(agent.child.isRunning)
  }

  func testExpectContinueIsAnsweredRightAway() throws {
    // libcurl sends `Expect: 100-continue` for bodies over 1 MiB and waits 1 s without an answer.
    let bodyPath = try put("src.bin", randomData(3 * 1024 * 1024))
    let result = try runCommand([
      "curl", "-sv", "-o", "/dev/null", "-H", "Content-Type: application/octet-stream",
      "--data-binary", "@" + bodyPath, agent.url + "/files?path=/dst.bin",
    ])
    XCTAssertTrue(result.error.contains("HTTP/1.1 100 Continue"), result.error)
    XCTAssertEqual(
      try Data(contentsOf: URL(fileURLWithPath: hostPath("dst.bin"))),
      try Data(contentsOf: URL(fileURLWithPath: bodyPath)))
  }

  func testRejectedBodyLeavesTheConnectionUsable() throws {
    // Small enough that curl has sent all of it before the 400 comes back; with a larger one
    // curl may stop sending mid-body and close the connection itself.
    let bodyPath = try put("src.bin", randomData(8 * 1024))
    let result = try runCommand([
      "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
      "-H", "Content-Type: text/plain", "--data-binary", "@" + bodyPath,
      agent.url + "/files?path=/x",
      "--next", "-s", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
      "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + bodyPath,
      agent.url + "/files?path=/y",
    ])
    XCTAssertEqual(result.output, "400 1\n200 0\n")
    XCTAssertEqual(
      try Data(contentsOf: URL(fileURLWithPath: hostPath("y"))),
      try Data(contentsOf: URL(fileURLWithPath: bodyPath)))
  }

  private func currentUmask() -> Int {
    let mask = umask(0)
    umask(mask)
    return Int(mask)
  }
}
