import CXattr
import Foundation
import TestSupport
import XCTest

/// `X-Metadata-*` upload headers as envd 0.6.2+ stores them: `user.e2b.<lower-cased key>`
/// xattrs, replaced on every upload, with envd's limits and its 400s.
final class AgentMetadataTests: AgentTestCase {
  func testHeadersBecomeLowerCasedUserE2BXattrs() throws {
    let reply = try client.upload(
      "/m.txt", Data("m".utf8),
      headers: ["X-Metadata-Owner: alice", "x-metadata-PROJECT: Demo Value"])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(
      reply.text,
      #"[{"metadata":{"owner":"alice","project":"Demo Value"},"name":"m.txt","path":"/m.txt","type":"file"}]"#
    )
    XCTAssertEqual(xattr("m.txt", "user.e2b.owner"), "alice")
    XCTAssertEqual(xattr("m.txt", "user.e2b.project"), "Demo Value")
    let stat = try client.rpc("Stat", #"{"path":"/m.txt"}"#)
    XCTAssertEqual(
      (stat.json["entry"] as? [String: Any])?["metadata"] as? [String: String],
      ["owner": "alice", "project": "Demo Value"])
  }

  func testEachUploadReplacesTheWholeSet() throws {
    try put("f.txt", Data("x".utf8))
    setXattr("f.txt", "user.e2b.stale", "old")
    setXattr("f.txt", "user.other", "kept")
    let reply = try client.upload("/f.txt", Data("y".utf8), headers: ["X-Metadata-New: 1"])
    XCTAssertEqual(reply.jsonArray.first?["metadata"] as? [String: String], ["new": "1"])
    XCTAssertNil(xattr("f.txt", "user.e2b.stale"))
    XCTAssertEqual(xattr("f.txt", "user.other"), "kept")
    // No headers: the set is cleared and the answer has no metadata.
    let plain = try client.upload("/f.txt", Data("z".utf8))
    XCTAssertEqual(plain.text, #"[{"name":"f.txt","path":"/f.txt","type":"file"}]"#)
    XCTAssertNil(xattr("f.txt", "user.e2b.new"))
    XCTAssertEqual(xattr("f.txt", "user.other"), "kept")
  }

  func testFirstValueWinsEmptyKeysAreSkippedEmptyValuesKept() throws {
    let reply = try client.upload(
      "/d.txt", Data(),
      headers: [
        "X-Metadata-Dup: first", "X-METADATA-DUP: second", "X-Metadata-: nothing",
        "X-Metadata-Empty;",
      ])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(
      reply.jsonArray.first?["metadata"] as? [String: String], ["dup": "first", "empty": ""])
  }

  func testMultipartAppliesTheSetToEveryFilePart() throws {
    let source = try put("src.txt", Data("content".utf8))
    let reply = try client.request(
      "/files", method: "POST", headers: ["X-Metadata-Batch: 7"],
      extra: [
        "-F", "file=@\(source);filename=/up/one.txt", "-F", "note=skipped",
        "-F", "file=@\(source);filename=/up/two.txt",
      ])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(
      reply.jsonArray.map { $0["metadata"] as? [String: String] }, [["batch": "7"], ["batch": "7"]])
    XCTAssertEqual(xattr("up/one.txt", "user.e2b.batch"), "7")
    XCTAssertEqual(xattr("up/two.txt", "user.e2b.batch"), "7")
    XCTAssertNil(xattr("src.txt", "user.e2b.batch"))
  }

  func testGzipBodyKeepsItsMetadata() throws {
    let plain = try put("source.txt", Data("compressed".utf8))
    XCTAssertEqual(try runCommand(["gzip", "-k", plain]).status, 0)
    let reply = try client.upload(
      "/g.txt", try Data(contentsOf: URL(fileURLWithPath: plain + ".gz")),
      headers: ["Content-Encoding: gzip", "X-Metadata-Zipped: yes"])
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(xattr("g.txt", "user.e2b.zipped"), "yes")
  }

  func testKeyLongerThan246BytesIs400() throws {
    let longest = String(repeating: "k", count: 246)
    XCTAssertEqual(
      try client.upload("/ok.txt", Data(), headers: ["X-Metadata-\(longest): v"]).status, 200)
    XCTAssertEqual(xattr("ok.txt", "user.e2b." + longest), "v")
    let tooLong = longest + "k"
    let reply = try client.upload("/no.txt", Data("x".utf8), headers: ["X-Metadata-\(tooLong): v"])
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(
      reply.text,
      "{\"code\":400,\"message\":\"invalid metadata: metadata key \\\"\(tooLong)\\\" exceeds 246 bytes\"}\n"
    )
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("no.txt")))
  }

  func testNonPrintableValuesAre400() throws {
    let tab = try client.upload("/t.txt", Data("x".utf8), headers: ["X-Metadata-T: a\tb"])
    XCTAssertEqual(tab.status, 400)
    XCTAssertEqual(
      tab.json["message"] as? String,
      #"invalid metadata: metadata value for key "t" contains non-printable-ASCII byte 0x09 at offset 1"#
    )
    let utf8 = try client.upload("/u.txt", Data("x".utf8), headers: ["X-Metadata-U: né"])
    XCTAssertEqual(utf8.status, 400)
    XCTAssertEqual(
      utf8.json["message"] as? String,
      #"invalid metadata: metadata value for key "u" contains non-printable-ASCII byte 0xc3 at offset 1"#
    )
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("t.txt")))
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("u.txt")))
  }

  func testTotalOver4096BytesIs400() throws {
    // Counted as in envd: "user.e2b." + key + value for each entry.
    let reply = try client.upload(
      "/big.txt", Data("x".utf8),
      headers: [
        "X-Metadata-A: " + String(repeating: "a", count: 2000),
        "X-Metadata-B: " + String(repeating: "b", count: 2077),
      ])
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(
      reply.json["message"] as? String,
      "invalid metadata: total metadata size 4097 exceeds 4096 bytes")
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("big.txt")))
  }

  func testMetadataIsCheckedBeforeTheContentTypeAndAfterTheUser() throws {
    let bad = "X-Metadata-T: a\tb"
    let wrongType = try client.request(
      "/files?path=/x", method: "POST", headers: ["Content-Type: text/plain", bad],
      body: Data("x".utf8))
    XCTAssertEqual(wrongType.status, 400)
    XCTAssertTrue((wrongType.json["message"] as? String ?? "").hasPrefix("invalid metadata: "))
    let unknownUser = try client.request(
      "/files?path=/x&username=no-such-user-xyz", method: "POST",
      headers: ["Content-Type: application/octet-stream", bad], body: Data("x".utf8))
    XCTAssertEqual(unknownUser.status, 401)
  }

  // MARK: - xattrs on the host

  private func xattr(_ relative: String, _ name: String) -> String? {
    let path = hostPath(relative)
    let size = getxattr(path, name, nil, 0)
    guard size >= 0 else { return nil }
    var buffer = [UInt8](repeating: 0, count: size)
    let read = getxattr(path, name, &buffer, size)
    guard read >= 0 else { return nil }
    return String(decoding: buffer[..<read], as: UTF8.self)
  }

  private func setXattr(_ relative: String, _ name: String, _ value: String) {
    let bytes = Array(value.utf8)
    XCTAssertEqual(setxattr(hostPath(relative), name, bytes, bytes.count, 0), 0)
  }
}
