import Foundation
import TestSupport
import XCTest

/// `sandbox-agent --protocol vercel`: Vercel Sandbox's REST routes over the served folder, which
/// stands for the sandbox's `/` (the working directory `/vercel/sandbox` is `<root>/vercel/sandbox`).
class VercelTestCase: AgentTestCase {
  override var agentArguments: [String] { ["--protocol", "vercel"] }
  var authorization: [String] { ["Authorization: Bearer anything"] }

  /// The session the control-plane lookup hands out.
  func sessionID() throws -> String {
    let reply = try client.request("/api/v2/sandboxes/demo?projectId=p", headers: authorization)
    XCTAssertEqual(reply.status, 200, reply.text)
    return try XCTUnwrap((reply.json["sandbox"] as? [String: Any])?["currentSessionId"] as? String)
  }

  func session(_ route: String, _ body: Any? = nil, method: String? = nil) throws
    -> AgentClient.Reply
  {
    let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
    return try client.request(
      "/api/v2/sandboxes/sessions/\(sessionID())/\(route)",
      method: method ?? (body == nil ? "GET" : "POST"),
      headers: authorization + ["Content-Type: application/json"], body: data)
  }

  func errorCode(_ reply: AgentClient.Reply) -> String? {
    (reply.json["error"] as? [String: Any])?["code"] as? String
  }

  func ndjson(_ reply: AgentClient.Reply) -> [[String: Any]] {
    reply.text.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  /// A gzip'ed tar of `files` (relative name → (contents, mode)), made by the system's tar.
  func tarball(_ files: [String: (Data, Int)], directories: [String: Int] = [:]) throws -> Data {
    let folder = try TemporaryDirectory(prefix: "vercel-tar")
    defer { folder.remove() }
    let tree = folder.path + "/tree"
    for (name, mode) in directories {
      try FileManager.default.createDirectory(
        atPath: tree + "/" + name, withIntermediateDirectories: true)
      chmod(tree + "/" + name, mode_t(mode))
    }
    for (name, (contents, mode)) in files {
      let path = tree + "/" + name
      try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try contents.write(to: URL(fileURLWithPath: path))
      chmod(path, mode_t(mode))
    }
    let names = Array(directories.keys) + Array(files.keys)
    let result = try runCommand(
      ["tar", "-czf", folder.path + "/out.tgz", "--no-recursion", "-C", tree] + names.sorted())
    XCTAssertEqual(result.status, 0, result.error)
    return try Data(contentsOf: URL(fileURLWithPath: folder.path + "/out.tgz"))
  }

  func write(_ tar: Data, cwd: String = "/") throws -> AgentClient.Reply {
    try client.request(
      "/api/v2/sandboxes/sessions/\(sessionID())/fs/write", method: "POST",
      headers: authorization + ["Content-Type: application/gzip", "x-cwd: \(cwd)"], body: tar)
  }

  func mode(_ relative: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: hostPath(relative))
    return (attributes[.posixPermissions] as? Int) ?? -1
  }
}

final class VercelRoutesTests: VercelTestCase {
  func testLookupNamesARunningSessionWithAndWithoutTheAPIPrefix() throws {
    for prefix in ["/api", ""] {
      let reply = try client.request("\(prefix)/v2/sandboxes/box?projectId=p&resume=true")
      XCTAssertEqual(reply.status, 200, reply.text)
      let sandbox = try XCTUnwrap(reply.json["sandbox"] as? [String: Any])
      let session = try XCTUnwrap(reply.json["session"] as? [String: Any])
      XCTAssertEqual(sandbox["name"] as? String, "box")
      XCTAssertEqual(sandbox["status"] as? String, "running")
      XCTAssertEqual(session["status"] as? String, "running")
      XCTAssertEqual(session["id"] as? String, sandbox["currentSessionId"] as? String)
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: hostPath("vercel/sandbox")))
  }

  func testReadStreamsTheFile() throws {
    let data = randomData(3 << 20)
    try put("vercel/sandbox/big.bin", data)
    let reply = try session("fs/read", ["path": "big.bin"])
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.headers["content-type"], "application/octet-stream")
    XCTAssertEqual(reply.body, data)
    try put("etc/motd", Data("absolute".utf8))
    XCTAssertEqual(try session("fs/read", ["path": "/etc/motd"]).text, "absolute")
    XCTAssertEqual(try session("fs/read", ["path": "motd", "cwd": "/etc"]).text, "absolute")
  }

  func testMissingPathIs404NotFound() throws {
    let reply = try session("fs/read", ["path": "/no/such/file"])
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(errorCode(reply), "not_found")
    XCTAssertNotNil((reply.json["error"] as? [String: Any])?["message"] as? String)
    let mkdir = try session("fs/mkdir", ["path": "/no/such/dir", "recursive": false])
    XCTAssertEqual(mkdir.status, 404)
    XCTAssertEqual(errorCode(mkdir), "not_found")
  }

  func testEscapeAttemptsAreRefused() throws {
    for path in ["/../etc/hostname", "../../../../etc/hostname"] {
      let reply = try session("fs/read", ["path": path])
      XCTAssertEqual(reply.status, 400, path)
      XCTAssertEqual(errorCode(reply), "invalid_path", path)
    }
    // A symlink to a host path resolves inside the root, where nothing is.
    try FileManager.default.createDirectory(
      atPath: hostPath("vercel/sandbox"), withIntermediateDirectories: true)
    symlink("/etc/hostname", hostPath("vercel/sandbox/escape"))
    XCTAssertEqual(try session("fs/read", ["path": "escape"]).status, 404)
    // Nor can a tar entry climb out, whatever x-cwd says.
    let outside = root.path + "/../vercel-escape-\(UUID().uuidString)"
    let name = "../../../" + (outside as NSString).lastPathComponent
    let tar = try rawTar(entryName: name, contents: Data("x".utf8))
    let reply = try write(tar, cwd: "/")
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(errorCode(reply), "invalid_path")
    XCTAssertFalse(FileManager.default.fileExists(atPath: outside))
  }

  func testWriteUnpacksEntriesWithTheirModes() throws {
    let tar = try tarball(
      [
        "vercel/sandbox/run.sh": (Data("#!/bin/sh\n".utf8), 0o755),
        "vercel/sandbox/secret": (Data("s".utf8), 0o600),
        "vercel/sandbox/deep/er/file.txt": (Data("deep".utf8), 0o644),
        "data/blob.bin": (randomData(200_000), 0o640),
      ],
      directories: ["vercel/sandbox/private": 0o700])
    let reply = try write(tar)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.json.count, 0)
    XCTAssertEqual(try mode("vercel/sandbox/run.sh"), 0o755)
    XCTAssertEqual(try mode("vercel/sandbox/secret"), 0o600)
    XCTAssertEqual(try mode("vercel/sandbox/deep/er/file.txt"), 0o644)
    XCTAssertEqual(try mode("data/blob.bin"), 0o640)
    XCTAssertEqual(try mode("vercel/sandbox/private"), 0o700)
    XCTAssertEqual(
      try String(contentsOfFile: hostPath("vercel/sandbox/deep/er/file.txt"), encoding: .utf8),
      "deep")
    // x-cwd: entry names are relative to it; a file replaced keeps only the new contents.
    let again = try tarball(["file.txt": (Data("new".utf8), 0o600)])
    XCTAssertEqual(try write(again, cwd: "/vercel/sandbox/deep/er").status, 200)
    XCTAssertEqual(
      try String(contentsOfFile: hostPath("vercel/sandbox/deep/er/file.txt"), encoding: .utf8),
      "new")
    XCTAssertEqual(try mode("vercel/sandbox/deep/er/file.txt"), 0o600)
  }

  func testMalformedArchiveIsABadRequest() throws {
    let reply = try write(Data("not a tarball at all".utf8))
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(errorCode(reply), "bad_request")
  }

  func testMkdir() throws {
    XCTAssertEqual(try session("fs/mkdir", ["path": "a/b/c", "recursive": true]).status, 200)
    XCTAssertEqual(try session("fs/mkdir", ["path": "a/b/c", "recursive": true]).status, 200)
    XCTAssertEqual(try session("fs/mkdir", ["path": "a/flat"]).status, 200)
    XCTAssertEqual(try session("fs/mkdir", ["path": "a/flat"]).status, 409)
    var isDirectory: ObjCBool = false
    XCTAssertTrue(
      FileManager.default.fileExists(
        atPath: hostPath("vercel/sandbox/a/b/c"), isDirectory: &isDirectory))
    XCTAssertTrue(isDirectory.boolValue)
  }

  func testWaitedCommandIsAnNDJSONStream() throws {
    let reply = try session(
      "cmd?wait=true&logs=true",
      ["command": "sh", "args": ["-c", "echo out; echo err >&2; exit 3"], "wait": true])
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.headers["content-type"], "application/x-ndjson")
    let records = ndjson(reply)
    XCTAssertEqual(records.count, 4, reply.text)
    let first = try XCTUnwrap(records.first?["command"] as? [String: Any])
    XCTAssertTrue(first["exitCode"] is NSNull)
    XCTAssertEqual(first["name"] as? String, "sh")
    XCTAssertEqual(first["cwd"] as? String, "/vercel/sandbox")
    XCTAssertNotNil(first["startedAt"] as? Int)
    XCTAssertNotNil(first["sessionId"] as? String)
    let output = records.dropFirst().dropLast().map {
      "\($0["stream"] as? String ?? "?"):\($0["data"] as? String ?? "?")"
    }
    XCTAssertEqual(Set(output), ["stdout:out\n", "stderr:err\n"])
    let last = try XCTUnwrap(records.last?["command"] as? [String: Any])
    XCTAssertEqual(last["exitCode"] as? Int, 3)
    XCTAssertEqual(last["id"] as? String, first["id"] as? String)
  }

  func testCommandStatusWaitLogsAndKill() throws {
    let started = try session("cmd", ["command": "sh", "args": ["-c", "echo hi; sleep 0.2"]])
    let command = try XCTUnwrap(started.json["command"] as? [String: Any])
    let id = try XCTUnwrap(command["id"] as? String)
    XCTAssertTrue(command["exitCode"] is NSNull)
    let waited = try session("cmd/\(id)?wait=true")
    XCTAssertEqual((waited.json["command"] as? [String: Any])?["exitCode"] as? Int, 0)
    let logs = try session("cmd/\(id)/logs")
    XCTAssertEqual(ndjson(logs).map { $0["data"] as? String }, ["hi\n"])
    XCTAssertEqual(ndjson(logs).map { $0["stream"] as? String }, ["stdout"])

    let sleeper = try session("cmd", ["command": "sleep", "args": ["60"]])
    let sleeperID = try XCTUnwrap((sleeper.json["command"] as? [String: Any])?["id"] as? String)
    XCTAssertEqual(try session("cmd/\(sleeperID)/kill", ["signal": 9]).status, 200)
    let killed = try session("cmd/\(sleeperID)?wait=true")
    XCTAssertEqual((killed.json["command"] as? [String: Any])?["exitCode"] as? Int, 137)
    XCTAssertEqual(errorCode(try session("cmd/cmd_nope")), "command_not_found")
  }

  func testStdinTakesBase64WithOffsets() throws {
    let started = try session("cmd", ["command": "cat", "attachStdin": true])
    let id = try XCTUnwrap((started.json["command"] as? [String: Any])?["id"] as? String)
    let first = try session(
      "cmd/\(id)/stdin", ["data": Data("abc".utf8).base64EncodedString(), "offset": 0])
    XCTAssertEqual(first.json["bytesWritten"] as? Int, 3, first.text)
    // A resent request: the bytes the process already has are skipped.
    let resent = try session(
      "cmd/\(id)/stdin", ["data": Data("abcdef".utf8).base64EncodedString(), "offset": 0])
    XCTAssertEqual(resent.json["bytesWritten"] as? Int, 6)
    XCTAssertEqual(try session("cmd/\(id)/stdin", ["offset": 9]).status, 400)
    XCTAssertEqual(try session("cmd/\(id)/stdin", [String: Any]()).json["bytesWritten"] as? Int, 6)
    XCTAssertEqual(try session("cmd/\(id)/stdin", ["close": true, "offset": 6]).status, 200)
    _ = try session("cmd/\(id)?wait=true")
    XCTAssertEqual(
      ndjson(try session("cmd/\(id)/logs")).compactMap { $0["data"] as? String }.joined(), "abcdef")

    let noStdin = try session("cmd", ["command": "true"])
    let noStdinID = try XCTUnwrap((noStdin.json["command"] as? [String: Any])?["id"] as? String)
    let refused = try session("cmd/\(noStdinID)/stdin", ["data": "eA=="])
    XCTAssertEqual(refused.status, 400)
    XCTAssertEqual(errorCode(refused), "command_stdin_unavailable")
  }

  func testStoppedSessionIs410UntilResumed() throws {
    let id = try sessionID()
    XCTAssertEqual(try session("stop", [String: Any]()).status, 200)
    let reply = try client.request(
      "/api/v2/sandboxes/sessions/\(id)/fs/read", method: "POST",
      body: Data(#"{"path":"/x"}"#.utf8))
    XCTAssertEqual(reply.status, 410)
    XCTAssertEqual(errorCode(reply), "sandbox_stopped")
    let stopped = try client.request("/api/v2/sandboxes/demo")
    XCTAssertEqual((stopped.json["sandbox"] as? [String: Any])?["status"] as? String, "stopped")
    let resumed = try client.request("/api/v2/sandboxes/demo?resume=true")
    let newID = try XCTUnwrap((resumed.json["session"] as? [String: Any])?["id"] as? String)
    XCTAssertNotEqual(newID, id)
    XCTAssertEqual(try session("fs/mkdir", ["path": "after"]).status, 200)
  }

  func testUnknownRouteIsVercelsNotFound() throws {
    let reply = try client.request("/api/v2/nothing/here")
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(errorCode(reply), "not_found")
  }

  /// A one-entry ustar archive, gzip'ed, whose name is taken as given (tar itself refuses `..`).
  func rawTar(entryName: String, contents: Data) throws -> Data {
    var header = [UInt8](repeating: 0, count: 512)
    func put(_ text: String, at offset: Int) {
      for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte }
    }
    put(entryName, at: 0)
    put("0000644\0", at: 100)
    put("0000000\0", at: 108)
    put("0000000\0", at: 116)
    put(String(format: "%011o\0", contents.count), at: 124)
    put("00000000000\0", at: 136)
    put("        ", at: 148)
    put("0", at: 156)
    put("ustar\0", at: 257)
    put("00", at: 263)
    let checksum = header.reduce(0) { $0 + Int($1) }
    put(String(format: "%06o\0 ", checksum), at: 148)
    var archive = Data(header) + contents
    archive.append(Data(count: (512 - contents.count % 512) % 512 + 1024))
    let folder = try TemporaryDirectory(prefix: "vercel-raw-tar")
    defer { folder.remove() }
    try archive.write(to: URL(fileURLWithPath: folder.path + "/a.tar"))
    XCTAssertEqual(try runCommand(["gzip", "-n", folder.path + "/a.tar"]).status, 0)
    return try Data(contentsOf: URL(fileURLWithPath: folder.path + "/a.tar.gz"))
  }
}

/// With a token configured, Vercel's bearer token must carry it: 401 without, 403 when wrong.
final class VercelAuthTests: VercelTestCase {
  override var agentEnvironment: [String: String]? { ["SANDBOX_AGENT_TOKEN": "vercel-secret"] }
  override var authorization: [String] { ["Authorization: Bearer vercel-secret"] }

  func testBearerTokenIsChecked() throws {
    let missing = try client.request("/api/v2/sandboxes/demo")
    XCTAssertEqual(missing.status, 401)
    XCTAssertEqual(errorCode(missing), "unauthorized")
    let wrong = try client.request(
      "/api/v2/sandboxes/demo", headers: ["Authorization: Bearer vercel-secreT"])
    XCTAssertEqual(wrong.status, 403)
    XCTAssertEqual(errorCode(wrong), "forbidden")
    XCTAssertEqual(try session("fs/mkdir", ["path": "ok"]).status, 200)
    let unauthorizedRead = try client.request(
      "/api/v2/sandboxes/sessions/\(sessionID())/fs/read", method: "POST",
      headers: ["Authorization: Bearer nope"], body: Data(#"{"path":"ok"}"#.utf8))
    XCTAssertEqual(unauthorizedRead.status, 403)
  }
}
