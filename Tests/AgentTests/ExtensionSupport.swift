import Foundation
import TestSupport
import XCTest

extension AgentClient {
  /// A call of the agent extension, `POST /sandboxagent.v1.Extension/<method>`.
  func ext(_ method: String, _ json: String, headers: [String] = []) throws -> Reply {
    try rpc(method, json, service: "sandboxagent.v1.Extension", headers: headers)
  }

  /// `POST /sandboxagent/v1/files?path=…` plus `query` (e.g. `&offset=4`).
  func writeAt(_ path: String, _ data: Data, query: String = "", headers: [String] = []) throws
    -> Reply
  {
    try request(
      "/sandboxagent/v1/files?path=\(Self.encode(path))\(query)", method: "POST",
      headers: ["Content-Type: application/octet-stream"] + headers, body: data)
  }
}

extension AgentClient.Reply {
  var attr: [String: Any] { json["attr"] as? [String: Any] ?? [:] }
  /// The errno name the extension puts first in a Connect error message.
  var errnoName: String? {
    (json["message"] as? String)?.split(separator: ":", maxSplits: 1).first.map(String.init)
  }
}

/// Extension tests: an agent per test on a fresh root, and host-side checks of what it did.
class ExtensionTestCase: AgentTestCase {
  /// lstat of a path under the root, on the host.
  func hostLstat(_ relative: String, file: StaticString = #filePath, line: UInt = #line) -> stat {
    var info = stat()
    XCTAssertEqual(lstat(hostPath(relative), &info), 0, "lstat \(relative)", file: file, line: line)
    return info
  }

  func exists(_ relative: String) -> Bool {
    var info = stat()
    return lstat(hostPath(relative), &info) == 0
  }

  /// Every field of an `Attr` equals the host's lstat.
  func assertAttr(
    _ attr: [String: Any], matches info: stat, file: StaticString = #filePath, line: UInt = #line
  ) {
    let expected: [String: AnyHashable] = [
      "dev": String(info.st_dev), "ino": String(info.st_ino), "mode": Int(info.st_mode),
      "nlink": Int(info.st_nlink), "uid": Int(info.st_uid), "gid": Int(info.st_gid),
      "rdev": String(info.st_rdev), "size": String(info.st_size),
      "blocks": String(info.st_blocks), "blksize": Int(info.st_blksize),
      "atime": String(info.st_atim.tv_sec), "atimeNsec": Int(info.st_atim.tv_nsec),
      "mtime": String(info.st_mtim.tv_sec), "mtimeNsec": Int(info.st_mtim.tv_nsec),
      "ctime": String(info.st_ctim.tv_sec), "ctimeNsec": Int(info.st_ctim.tv_nsec),
    ]
    for (key, value) in expected {
      let actual = attr[key] as? AnyHashable
      XCTAssertEqual(actual, value, "attr field \(key)", file: file, line: line)
    }
  }

  /// Asserts a failed call: the status, the Connect code and the errno name first in the message.
  func assertErrno(
    _ reply: AgentClient.Reply, _ name: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertEqual(reply.errnoName, name, reply.text, file: file, line: line)
    XCTAssertEqual(reply.headers["content-type"], "application/json", file: file, line: line)
    XCTAssertNotNil(reply.json["code"] as? String, reply.text, file: file, line: line)
    XCTAssertNotEqual(reply.status, 200, file: file, line: line)
  }

  /// Sets a file's times on the host.
  func setTimes(_ relative: String, access: timespec, modification: timespec) {
    var times = [access, modification]
    XCTAssertEqual(utimensat(AT_FDCWD, hostPath(relative), &times, AT_SYMLINK_NOFOLLOW), 0)
  }

  func makeDirectory(_ relative: String) throws {
    try FileManager.default.createDirectory(
      atPath: hostPath(relative), withIntermediateDirectories: true)
  }

  func makeSymlink(_ target: String, at relative: String) {
    XCTAssertEqual(symlink(target, hostPath(relative)), 0)
  }

  func contents(_ relative: String) -> Data? {
    FileManager.default.contents(atPath: hostPath(relative))
  }

  /// JSON string literal of `text`.
  func quoted(_ text: String) -> String {
    String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
  }
}
