import CXattr
import Foundation
import TestSupport
import XCTest

/// `filesystem.Filesystem` unary calls: EntryInfo mapping, envd's codes, Connect errors.
final class AgentFilesystemRPCTests: AgentTestCase {
  func entry(_ reply: AgentClient.Reply) -> [String: Any] {
    reply.json["entry"] as? [String: Any] ?? [:]
  }

  func testStatOfAFile() throws {
    let path = try put("dir/file.txt", Data("12345".utf8))
    XCTAssertEqual(chmod(path, 0o4755), 0)
    var times = [
      timespec(tv_sec: 1_700_000_000, tv_nsec: 120_000_000),
      timespec(tv_sec: 1_700_000_000, tv_nsec: 123_456_789),
    ]
    XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
    let reply = try client.rpc("Stat", #"{"path":"/dir/file.txt"}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.headers["content-type"], "application/json")
    let info = entry(reply)
    XCTAssertEqual(info["name"] as? String, "file.txt")
    XCTAssertEqual(info["path"] as? String, "/dir/file.txt")
    XCTAssertEqual(info["type"] as? String, "FILE_TYPE_FILE")
    XCTAssertEqual(info["size"] as? String, "5")
    XCTAssertEqual(info["mode"] as? Int, 0o755)
    XCTAssertEqual(info["permissions"] as? String, "urwxr-xr-x")
    XCTAssertEqual(info["owner"] as? String, "root")
    XCTAssertEqual(info["group"] as? String, "root")
    XCTAssertEqual(info["modifiedTime"] as? String, "2023-11-14T22:13:20.123456789Z")
    XCTAssertNil(info["symlinkTarget"])
  }

  func testTimestampDigitsAndZeroValuesOmitted() throws {
    let path = try put("empty", Data())
    var times = [
      timespec(tv_sec: 1_700_000_000, tv_nsec: 0),
      timespec(tv_sec: 1_700_000_000, tv_nsec: 500_000_000),
    ]
    XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
    XCTAssertEqual(chmod(path, 0), 0)
    let info = entry(try client.rpc("Stat", #"{"path":"/empty"}"#))
    XCTAssertEqual(info["modifiedTime"] as? String, "2023-11-14T22:13:20.500Z")
    XCTAssertNil(info["size"])
    XCTAssertNil(info["mode"])
    XCTAssertEqual(info["permissions"] as? String, "----------")
  }

  func testStatOfDirectoryAndSymlinks() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("d/sub"), withIntermediateDirectories: true)
    try put("d/target.txt", Data("t".utf8))
    XCTAssertEqual(symlink("target.txt", hostPath("d/link")), 0)
    XCTAssertEqual(symlink("/d/sub", hostPath("abs-link")), 0)
    XCTAssertEqual(symlink("nowhere", hostPath("dangling")), 0)
    XCTAssertEqual(chmod(hostPath("d/sub"), 0o1777), 0)

    let directory = entry(try client.rpc("Stat", #"{"path":"/d/sub"}"#))
    XCTAssertEqual(directory["type"] as? String, "FILE_TYPE_DIRECTORY")
    XCTAssertEqual(directory["permissions"] as? String, "dtrwxrwxrwx")
    XCTAssertEqual(directory["mode"] as? Int, 0o777)

    let link = entry(try client.rpc("Stat", #"{"path":"/d/link"}"#))
    XCTAssertEqual(link["type"] as? String, "FILE_TYPE_FILE")
    XCTAssertEqual(link["symlinkTarget"] as? String, "/d/target.txt")
    XCTAssertEqual(link["size"] as? String, "10")
    XCTAssertTrue((link["permissions"] as? String ?? "").hasPrefix("L"))

    let absolute = entry(try client.rpc("Stat", #"{"path":"/abs-link"}"#))
    XCTAssertEqual(absolute["type"] as? String, "FILE_TYPE_DIRECTORY")
    XCTAssertEqual(absolute["symlinkTarget"] as? String, "/d/sub")

    let dangling = entry(try client.rpc("Stat", #"{"path":"/dangling"}"#))
    XCTAssertNil(dangling["type"])
    XCTAssertNil(dangling["mode"])
    XCTAssertEqual(dangling["symlinkTarget"] as? String, "/dangling")

    XCTAssertEqual(link["isSymlink"] as? Bool, true)
    XCTAssertEqual(dangling["isSymlink"] as? Bool, true)
    XCTAssertNil(directory["isSymlink"], "false is left out, as protojson does")
  }

  /// `user.e2b.*` xattrs are EntryInfo's metadata, prefix stripped; a symlink shows its target's.
  func testMetadataFromUserE2BXattrs() throws {
    let file = try put("m/file.txt", Data("x".utf8))
    try put("m/plain.txt", Data())
    XCTAssertEqual(setxattr(file, "user.e2b.owner", "alice", 5, 0), 0)
    XCTAssertEqual(setxattr(file, "user.e2b.empty", "", 0, 0), 0)
    XCTAssertEqual(setxattr(file, "user.other", "hidden", 6, 0), 0)
    XCTAssertEqual(setxattr(file, "user.e2b.binary", [0xff, 0xfe], 2, 0), 0)
    XCTAssertEqual(symlink("file.txt", hostPath("m/link")), 0)
    let expected = ["owner": "alice", "empty": ""]

    let stat = entry(try client.rpc("Stat", #"{"path":"/m/file.txt"}"#))
    XCTAssertEqual(stat["metadata"] as? [String: String], expected)
    XCTAssertNil(entry(try client.rpc("Stat", #"{"path":"/m/plain.txt"}"#))["metadata"])
    let link = entry(try client.rpc("Stat", #"{"path":"/m/link"}"#))
    XCTAssertEqual(link["metadata"] as? [String: String], expected)

    let listed = try client.rpc("ListDir", #"{"path":"/m"}"#).json["entries"] as? [[String: Any]]
    let byName = Dictionary(
      uniqueKeysWithValues: (listed ?? []).map { ($0["name"] as? String ?? "", $0) })
    XCTAssertEqual(byName["file.txt"]?["metadata"] as? [String: String], expected)
    XCTAssertEqual(byName["link"]?["metadata"] as? [String: String], expected)
    XCTAssertEqual(byName["link"]?["isSymlink"] as? Bool, true)
    XCTAssertNil(byName["plain.txt"]?["metadata"])
  }

  func testStatMissingIsNotFound() throws {
    let reply = try client.rpc("Stat", #"{"path":"/missing"}"#)
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(reply.json["code"] as? String, "not_found")
    XCTAssertEqual(
      reply.json["message"] as? String, "file not found: lstat /missing: no such file or directory")
  }

  func testMalformedEmptyAndUnknownFields() throws {
    let malformed = try client.rpc("Stat", #"{"path":"#)
    XCTAssertEqual(malformed.status, 400)
    XCTAssertEqual(malformed.json["code"] as? String, "invalid_argument")
    let empty = try client.rpc("Stat", "")
    XCTAssertEqual(empty.status, 400)
    XCTAssertEqual(empty.json["code"] as? String, "invalid_argument")
    let wrongType = try client.rpc("Stat", #"{"path":5}"#)
    XCTAssertEqual(wrongType.json["code"] as? String, "invalid_argument")
    try put("x", Data())
    XCTAssertEqual(try client.rpc("Stat", #"{"path":"/x","whatever":{"a":[1]}}"#).status, 200)
  }

  func testWrongContentTypeIs415() throws {
    let reply = try client.request(
      "/filesystem.Filesystem/Stat", method: "POST", headers: ["Content-Type: text/plain"],
      body: Data("{}".utf8))
    XCTAssertEqual(reply.status, 415)
  }

  func testListDirDepthOrderAndRootExcluded() throws {
    try put("top/b.txt", Data("b".utf8))
    try put("top/a/inner.txt", Data("i".utf8))
    try put("top/a/deeper/x", Data("x".utf8))
    try put("top/C", Data())
    let one = try client.rpc("ListDir", #"{"path":"/top"}"#)
    XCTAssertEqual(one.status, 200)
    let names = (one.json["entries"] as? [[String: Any]] ?? []).map { $0["path"] as? String ?? "" }
    XCTAssertEqual(names, ["/top/C", "/top/a", "/top/b.txt"])
    let two = try client.rpc("ListDir", #"{"path":"/top","depth":2}"#)
    let deep = (two.json["entries"] as? [[String: Any]] ?? []).map { $0["path"] as? String ?? "" }
    XCTAssertEqual(deep, ["/top/C", "/top/a", "/top/a/deeper", "/top/a/inner.txt", "/top/b.txt"])
    let stringDepth = try client.rpc("ListDir", #"{"path":"/top","depth":"3"}"#)
    XCTAssertEqual((stringDepth.json["entries"] as? [Any])?.count, 6)
  }

  func testListDirEmptyThroughSymlinkAndErrors() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("empty"), withIntermediateDirectories: true)
    XCTAssertEqual(try client.rpc("ListDir", #"{"path":"/empty"}"#).text, "{}")
    try put("real/f", Data())
    XCTAssertEqual(symlink("real", hostPath("alias")), 0)
    let viaLink = try client.rpc("ListDir", #"{"path":"/alias"}"#)
    XCTAssertEqual(
      (viaLink.json["entries"] as? [[String: Any]])?.first?["path"] as? String, "/alias/f")
    let missing = try client.rpc("ListDir", #"{"path":"/nope"}"#)
    XCTAssertEqual(missing.json["code"] as? String, "not_found")
    let file = try client.rpc("ListDir", #"{"path":"/real/f"}"#)
    XCTAssertEqual(file.json["code"] as? String, "invalid_argument")
    XCTAssertEqual(file.json["message"] as? String, "path is not a directory: /real/f")
    XCTAssertEqual(symlink("loop", hostPath("loop")), 0)
    XCTAssertEqual(
      try client.rpc("ListDir", #"{"path":"/loop"}"#).json["code"] as? String, "failed_precondition"
    )
  }

  func testNonUTF8NameFailsListDirWithInternal() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("odd"), withIntermediateDirectories: true)
    let name = hostPath("odd/") + "bad\u{FFFD}"
    _ = name
    var bytes = Array(hostPath("odd/bad").utf8) + [0xFF, 0xFE]
    bytes.append(0)
    let fd = bytes.withUnsafeBufferPointer { buffer in
      buffer.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) }
    }
    XCTAssertGreaterThanOrEqual(fd, 0)
    close(fd)
    let reply = try client.rpc("ListDir", #"{"path":"/odd"}"#)
    XCTAssertEqual(reply.status, 500)
    XCTAssertEqual(reply.json["code"] as? String, "internal")
    // Remove still deletes it, bytes and all.
    XCTAssertEqual(try client.rpc("Remove", #"{"path":"/odd"}"#).status, 200)
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("odd")))
  }

  func testMakeDirIsMkdirP() throws {
    let reply = try client.rpc("MakeDir", #"{"path":"/x/y/z"}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(entry(reply)["type"] as? String, "FILE_TYPE_DIRECTORY")
    XCTAssertEqual(entry(reply)["path"] as? String, "/x/y/z")
    var isDirectory: ObjCBool = false
    XCTAssertTrue(
      FileManager.default.fileExists(atPath: hostPath("x/y/z"), isDirectory: &isDirectory))
    XCTAssertTrue(isDirectory.boolValue)
    let again = try client.rpc("MakeDir", #"{"path":"/x/y/z"}"#)
    XCTAssertEqual(again.status, 409)
    XCTAssertEqual(again.json["code"] as? String, "already_exists")
    try put("file", Data())
    XCTAssertEqual(
      try client.rpc("MakeDir", #"{"path":"/file"}"#).json["code"] as? String, "invalid_argument")
  }

  func testMoveCreatesParentsAndReplaces() throws {
    try put("src.txt", Data("moved".utf8))
    try put("dst-existing.txt", Data("old".utf8))
    let reply = try client.rpc(
      "Move", #"{"source":"/src.txt","destination":"/new/parent/dst.txt"}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(entry(reply)["path"] as? String, "/new/parent/dst.txt")
    XCTAssertEqual(entry(reply)["size"] as? String, "5")
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("src.txt")))
    XCTAssertEqual(
      try String(contentsOfFile: hostPath("new/parent/dst.txt"), encoding: .utf8), "moved")
    let replace = try client.rpc(
      "Move", #"{"source":"/new/parent/dst.txt","destination":"/dst-existing.txt"}"#)
    XCTAssertEqual(replace.status, 200)
    XCTAssertEqual(
      try String(contentsOfFile: hostPath("dst-existing.txt"), encoding: .utf8), "moved")
    let missing = try client.rpc("Move", #"{"source":"/nope","destination":"/x"}"#)
    XCTAssertEqual(missing.status, 404)
    XCTAssertEqual(missing.json["code"] as? String, "not_found")
    try put("full/f", Data())
    try FileManager.default.createDirectory(
      atPath: hostPath("other"), withIntermediateDirectories: true)
    let notEmpty = try client.rpc("Move", #"{"source":"/other","destination":"/full"}"#)
    // envd says internal; the request caused it, so a 400 (the message keeps Go's errno text).
    XCTAssertEqual(notEmpty.json["code"] as? String, "failed_precondition")
    XCTAssertTrue((notEmpty.json["message"] as? String ?? "").hasSuffix("directory not empty"))
  }

  func testRemoveIsRecursiveAndQuietWhenMissing() throws {
    try put("tree/a/b/c.txt", Data("c".utf8))
    XCTAssertEqual(symlink("/tree/a", hostPath("keep-link")), 0)
    XCTAssertEqual(try client.rpc("Remove", #"{"path":"/keep-link"}"#).text, "{}")
    XCTAssertTrue(FileManager.default.fileExists(atPath: hostPath("tree/a/b/c.txt")))
    XCTAssertEqual(try client.rpc("Remove", #"{"path":"/tree"}"#).status, 200)
    XCTAssertFalse(FileManager.default.fileExists(atPath: hostPath("tree")))
    XCTAssertEqual(try client.rpc("Remove", #"{"path":"/tree"}"#).status, 200)
  }
}
