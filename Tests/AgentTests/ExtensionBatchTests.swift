import Foundation
import Glibc
import TestSupport
import XCTest

/// `Batch`: an ordered list of changes in one request, each answered on its own.
final class ExtensionBatchTests: ExtensionTestCase {
  func testChangesApplyInOrderAndEachIsAnswered() throws {
    let content = Data("hello\n".utf8).base64EncodedString()
    let reply = try client.ext(
      "Batch",
      #"""
      {"changes":[
        {"op":"mkdir","path":"/d","mode":448},
        {"op":"put","path":"/d/f","mode":384,"content":"\#(content)","mtime":"1500000000","mtimeNsec":7},
        {"op":"rmdir","path":"/missing"},
        {"op":"symlink","path":"/d/l","target":"f"},
        {"op":"unlink","path":"/d/l"},
        {"op":"setattr","path":"/d","mtime":"1400000000"}
      ]}
      """#)
    XCTAssertEqual(reply.status, 200, reply.text)
    let results = reply.json["results"] as? [[String: Any]] ?? []
    XCTAssertEqual(results.count, 6)
    XCTAssertEqual(results[2]["error"] as? String, "ENOENT: no such file or directory: /missing")
    XCTAssertNil(results[1]["error"])
    let file = hostLstat("d/f")  // Before reading it moves the atime.
    XCTAssertEqual(contents("d/f"), Data("hello\n".utf8))
    XCTAssertEqual(file.st_mode & 0o7777, 0o600)
    XCTAssertEqual(file.st_mtim.tv_sec, 1_500_000_000)
    XCTAssertEqual(file.st_mtim.tv_nsec, 7)
    assertAttr(results[1]["attr"] as? [String: Any] ?? [:], matches: file)
    XCTAssertEqual(hostLstat("d").st_mode & 0o7777, 0o700)
    XCTAssertEqual(hostLstat("d").st_mtim.tv_sec, 1_400_000_000)
    XCTAssertFalse(exists("d/l"))
  }

  /// A put over an existing file replaces it whole (a new inode, no temporary left) and
  /// leaves the directory's mtime as it was, as rewriting a file does on Linux.
  func testPutReplacesAtomicallyAndKeepsTheDirectoryTime() throws {
    try makeDirectory("d")
    try put("d/f", Data("old content".utf8))
    XCTAssertEqual(chmod(hostPath("d/f"), 0o640), 0)
    setTimes(
      "d", access: timespec(tv_sec: 1_000_000_000, tv_nsec: 0),
      modification: timespec(tv_sec: 1_000_000_000, tv_nsec: 0))
    let inode = hostLstat("d/f").st_ino
    let content = Data("new".utf8).base64EncodedString()
    let reply = try client.ext(
      "Batch", #"{"changes":[{"op":"put","path":"/d/f","content":"\#(content)"}]}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(contents("d/f"), Data("new".utf8))
    XCTAssertNotEqual(hostLstat("d/f").st_ino, inode)
    XCTAssertEqual(hostLstat("d/f").st_mode & 0o7777, 0o640, "the mode of the file replaced")
    XCTAssertEqual(hostLstat("d").st_mtim.tv_sec, 1_000_000_000)
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: hostPath("d")), ["f"])
  }

  /// A put of a new file links it into place whole: watchers see its one create, not a hidden
  /// name made and renamed (rsync through a mount gave three events per file).
  func testPutOfANewFileIsOneCreateForWatchers() throws {
    try makeDirectory("d")
    let queue = inotify_init1(Int32(IN_NONBLOCK))
    XCTAssertGreaterThanOrEqual(queue, 0)
    defer { close(queue) }
    let events = UInt32(IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO)
    XCTAssertGreaterThanOrEqual(inotify_add_watch(queue, hostPath("d"), events), 0)
    let content = Data("new".utf8).base64EncodedString()
    let reply = try client.ext(
      "Batch", #"{"changes":[{"op":"put","path":"/d/f","content":"\#(content)"}]}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(contents("d/f"), Data("new".utf8))
    var buffer = [UInt8](repeating: 0, count: 65536)
    let count = buffer.withUnsafeMutableBytes { read(queue, $0.baseAddress, $0.count) }
    var seen: [String] = []
    var offset = 0
    // struct inotify_event: wd, mask, cookie, len (4 bytes each), then a NUL-padded name.
    while count > 0 && offset + 16 <= count {
      let mask = buffer[(offset + 4)..<(offset + 8)].reversed().reduce(0) { $0 << 8 | UInt32($1) }
      let length = buffer[(offset + 12)..<(offset + 16)].reversed().reduce(0) { $0 << 8 | Int($1) }
      let name = String(
        decoding: buffer[(offset + 16)..<(offset + 16 + length)].prefix { $0 != 0 }, as: UTF8.self)
      seen.append("\(mask & UInt32(IN_CREATE) != 0 ? "create" : "move") \(name)")
      offset += 16 + length
    }
    XCTAssertEqual(seen, ["create f"])
  }

  func testAMalformedBatchChangesNothing() throws {
    let reply = try client.ext(
      "Batch", #"{"changes":[{"op":"mkdir","path":"/d"},{"op":"explode","path":"/x"}]}"#)
    XCTAssertEqual(reply.status, 400, reply.text)
    XCTAssertEqual(reply.json["code"] as? String, "invalid_argument")
    XCTAssertFalse(exists("d"))
    let escape = try client.ext(
      "Batch", #"{"changes":[{"op":"put","path":"/../outside","content":""}]}"#)
    XCTAssertEqual(escape.status, 200, escape.text)
    let results = escape.json["results"] as? [[String: Any]] ?? []
    XCTAssertTrue((results.first?["error"] as? String ?? "").hasPrefix("EACCES"), escape.text)
  }
}
