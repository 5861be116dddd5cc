import Foundation
import TestSupport
import XCTest

/// `POST /sandboxagent/v1/files`: writes at an offset, in place.
final class ExtensionWriteTests: ExtensionTestCase {
  func testWriteAtAnOffsetKeepsTheRestAndTheInode() throws {
    try put("f", Data("0123456789".utf8))
    XCTAssertEqual(chown(hostPath("f"), 1234, 1234), 0)
    let inode = hostLstat("f").st_ino
    let reply = try client.writeAt("/f", Data("XYZ".utf8), query: "&offset=4")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.headers["content-type"], "application/json")
    XCTAssertEqual(reply.json["written"] as? String, "3")
    let info = hostLstat("f")  // Before reading it moves the atime.
    assertAttr(reply.attr, matches: info)
    XCTAssertEqual(info.st_ino, inode)
    XCTAssertEqual(info.st_uid, 1234)
    XCTAssertEqual(contents("f"), Data("0123XYZ789".utf8))
    XCTAssertEqual(try client.writeAt("/f", Data("ab".utf8)).status, 200)  // offset 0
    XCTAssertEqual(contents("f"), Data("ab23XYZ789".utf8))
  }

  func testWritePastTheEndLeavesAHole() throws {
    try put("f", Data("ab".utf8))
    let reply = try client.writeAt("/f", Data("Z".utf8), query: "&offset=6")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(contents("f"), Data("ab".utf8) + Data(count: 4) + Data("Z".utf8))
    XCTAssertEqual(reply.attr["size"] as? String, "7")
  }

  func testSizeIsSetBeforeWriting() throws {
    try put("f", Data("0123456789".utf8))
    XCTAssertEqual(try client.writeAt("/f", Data("new".utf8), query: "&size=0").status, 200)
    XCTAssertEqual(contents("f"), Data("new".utf8))
    XCTAssertEqual(
      try client.writeAt("/f", Data("!".utf8), query: "&offset=5&size=2").status, 200)
    XCTAssertEqual(contents("f"), Data("ne".utf8) + Data(count: 3) + Data("!".utf8))
    let empty = try client.writeAt("/f", Data(), query: "&size=1")
    XCTAssertEqual(empty.status, 200)
    XCTAssertEqual(empty.json["written"] as? String, "0")
    XCTAssertEqual(contents("f"), Data("n".utf8))
  }

  func testGzipBodyIsDecoded() throws {
    try put("f", Data(count: 8))
    let folder = try TemporaryDirectory(prefix: "ext-write")
    defer { folder.remove() }
    let payload = Data(String(repeating: "gzip body ", count: 1000).utf8)
    try payload.write(to: URL(fileURLWithPath: folder.path + "/body"))
    XCTAssertEqual(try runCommand(["gzip", "-k", folder.path + "/body"]).status, 0)
    let reply = try client.request(
      "/sandboxagent/v1/files?path=/f&offset=2", method: "POST",
      headers: ["Content-Type: application/octet-stream", "Content-Encoding: gzip"],
      bodyFile: folder.path + "/body.gz")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.json["written"] as? String, String(payload.count))
    XCTAssertEqual(contents("f"), Data(count: 2) + payload)
    let bad = try client.writeAt("/f", Data("not gzip".utf8), headers: ["Content-Encoding: gzip"])
    assertErrno(bad, "EINVAL")
    assertErrno(
      try client.writeAt("/f", Data("x".utf8), headers: ["Content-Encoding: br"]), "EINVAL")
  }

  func testLargeBodyAtAnOffset() throws {
    let original = randomData(3 << 20)
    try put("big", original)
    let payload = randomData(9 << 20 + 17)
    let reply = try client.writeAt("/big", payload, query: "&offset=1048577")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.json["written"] as? String, String(payload.count))
    XCTAssertEqual(contents("big"), original.prefix(1_048_577) + payload)
  }

  func testErrors() throws {
    try makeDirectory("dir")
    try put("target", Data("target".utf8))
    makeSymlink("target", at: "link")
    XCTAssertEqual(mkfifo(hostPath("fifo"), 0o600), 0)
    assertErrno(try client.writeAt("/missing", Data("x".utf8)), "ENOENT")
    XCTAssertFalse(exists("missing"))
    assertErrno(try client.writeAt("/dir", Data("x".utf8)), "EISDIR")
    assertErrno(try client.writeAt("/", Data("x".utf8)), "EISDIR")
    assertErrno(try client.writeAt("/link", Data("x".utf8)), "ELOOP")
    XCTAssertEqual(contents("target"), Data("target".utf8))
    assertErrno(try client.writeAt("/fifo", Data("x".utf8)), "EINVAL")
    assertErrno(try client.writeAt("/target", Data("x".utf8), query: "&offset=-1"), "EINVAL")
    assertErrno(try client.writeAt("/target", Data("x".utf8), query: "&offset=abc"), "EINVAL")
    assertErrno(try client.writeAt("/target", Data("x".utf8), query: "&size=1x"), "EINVAL")
    assertErrno(try client.writeAt("relative", Data("x".utf8)), "EINVAL")
    let noPath = try client.request(
      "/sandboxagent/v1/files", method: "POST", body: Data("x".utf8))
    assertErrno(noPath, "EINVAL")
    XCTAssertEqual(contents("target"), Data("target".utf8))
  }

  func testReplaceRenamesACompleteCopyWithTheTargetsOwnerAndMode() throws {
    try put("f", Data("old content".utf8))
    XCTAssertEqual(chown(hostPath("f"), 1234, 1234), 0)
    XCTAssertEqual(chmod(hostPath("f"), 0o4751), 0)
    let inode = hostLstat("f").st_ino
    let reply = try client.writeAt("/f", Data("new".utf8), query: "&replace=1&length=3")
    XCTAssertEqual(reply.status, 200, reply.text)
    let info = hostLstat("f")  // Before reading it moves the atime.
    XCTAssertEqual(contents("f"), Data("new".utf8))
    XCTAssertNotEqual(info.st_ino, inode, "a replace is a new file renamed over the old")
    XCTAssertEqual(info.st_uid, 1234)
    XCTAssertEqual(info.st_mode & 0o7777, 0o4751)
    assertAttr(reply.attr, matches: info)
    XCTAssertNotNil(reply.json["parent"] as? [String: Any], "the directory changed: its attr")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: hostPath("")), ["f"])
  }

  func testACutReplaceKeepsTheOldContentAndLeavesNothing() throws {
    try put("f", Data("old content".utf8))
    // Fewer bytes than announced: what a cut upload looks like to the agent.
    assertErrno(
      try client.writeAt("/f", Data("partial".utf8), query: "&replace=1&length=100"), "EIO")
    XCTAssertEqual(contents("f"), Data("old content".utf8))
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: hostPath("")), ["f"])
    assertErrno(try client.writeAt("/f", Data("x".utf8), query: "&replace=1&offset=2"), "EINVAL")
    assertErrno(try client.writeAt("/missing", Data("x".utf8), query: "&replace=1"), "ENOENT")
  }

  /// The agent killed in the middle of a replace leaves the old file and nothing beside it
  /// (its temporary file is anonymous until the rename).
  func testAnAgentKilledMidReplaceLeavesNoTemporaryFile() throws {
    try put("f", Data("old content".utf8))
    let connection = try RawConnection(url: agent.url)
    try connection.send(
      "POST /sandboxagent/v1/files?path=/f&replace=1&length=1000000 HTTP/1.1\r\nHost: x\r\n"
        + "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")
    try connection.send([UInt8](repeating: 120, count: 300_000))
    Thread.sleep(forTimeInterval: 0.5)  // the body's first part is written
    kill(agent.child.process.processIdentifier, SIGKILL)
    agent.child.process.waitUntilExit()
    XCTAssertEqual(contents("f"), Data("old content".utf8))
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: hostPath("")), ["f"])
  }

  func testReplaceOfAFileWithHardLinksWritesInPlace() throws {
    try put("f", Data("old content".utf8))
    XCTAssertEqual(link(hostPath("f"), hostPath("g")), 0)
    XCTAssertEqual(try client.writeAt("/f", Data("new".utf8), query: "&replace=1").status, 200)
    XCTAssertEqual(contents("g"), Data("new".utf8), "the other link shares the new content")
    XCTAssertEqual(hostLstat("f").st_ino, hostLstat("g").st_ino)
  }

  func testNameChangesAnswerTheChangedDirectories() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("d"), withIntermediateDirectories: true)
    let created = try client.ext("Create", #"{"path":"/d/f","mode":420}"#)
    XCTAssertEqual(created.status, 200, created.text)
    assertAttr(created.json["parent"] as? [String: Any] ?? [:], matches: hostLstat("d"))
    let renamed = try client.ext("Rename", #"{"from":"/d/f","to":"/g"}"#)
    assertAttr(renamed.attr, matches: hostLstat("g"))
    assertAttr(renamed.json["parent"] as? [String: Any] ?? [:], matches: hostLstat("d"))
    XCTAssertNotNil(renamed.json["toParent"] as? [String: Any])
    let unlinked = try client.ext("Unlink", #"{"path":"/g"}"#)
    XCTAssertNotNil(unlinked.json["parent"] as? [String: Any], unlinked.text)
  }

  func testCountersCountRequestsAndBodyBytes() throws {
    try put("f", Data())
    let before = try client.ext("Counters", "{}").json
    XCTAssertEqual(try client.writeAt("/f", Data(count: 1000), query: "&offset=0").status, 200)
    let after = try client.ext("Counters", "{}").json
    let requests = { (json: [String: Any]) in Int(json["requests"] as? String ?? "") ?? -1 }
    let bytes = { (json: [String: Any]) in Int(json["bytesIn"] as? String ?? "") ?? -1 }
    XCTAssertEqual(requests(after) - requests(before), 2)
    XCTAssertEqual(bytes(after) - bytes(before), 1000 + 2)  // the write and the "{}" body
  }
}
