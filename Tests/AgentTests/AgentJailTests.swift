import Foundation
import TestSupport
import XCTest

/// Nothing outside --root can be reached: not through `..`, not through symlinks.
final class AgentJailTests: AgentTestCase {
  var outside: TemporaryDirectory!

  override func setUpWithError() throws {
    try super.setUpWithError()
    outside = try TemporaryDirectory(prefix: "agent-outside")
    try Data("outside secret".utf8).write(to: URL(fileURLWithPath: outside.path + "/secret.txt"))
  }

  override func tearDown() {
    outside?.remove()
    super.tearDown()
  }

  func testDotDotEscapeIsBadPath() throws {
    let relativeToRoot =
      String(repeating: "../", count: 12) + String(outside.path.dropFirst()) + "/secret.txt"
    let download = try client.download("/" + relativeToRoot)
    XCTAssertEqual(download.status, 400)
    XCTAssertFalse(download.text.contains("outside secret"))
    let rpc = try client.rpc("Stat", "{\"path\":\"/\(relativeToRoot)\"}")
    XCTAssertEqual(rpc.status, 400)
    XCTAssertEqual(rpc.json["code"] as? String, "invalid_argument")
    let upload = try client.upload("/../escaped.txt", Data("x".utf8))
    XCTAssertEqual(upload.status, 400)
    XCTAssertEqual(
      try client.rpc("Remove", #"{"path":"/a/../../x"}"#).json["code"] as? String,
      "invalid_argument")
  }

  func testDotDotInsideTheRootIsFine() throws {
    try put("a/f.txt", Data("inside".utf8))
    XCTAssertEqual(try client.download("/a/../a/f.txt").text, "inside")
  }

  func testAbsoluteSymlinkOutsideResolvesInsideTheRoot() throws {
    XCTAssertEqual(symlink(outside.path + "/secret.txt", hostPath("abs")), 0)
    XCTAssertEqual(symlink(outside.path, hostPath("absdir")), 0)
    let download = try client.download("/abs")
    XCTAssertNotEqual(download.status, 200)
    XCTAssertFalse(download.text.contains("outside secret"))
    let stat = try client.rpc("Stat", #"{"path":"/abs"}"#)
    let entry = stat.json["entry"] as? [String: Any] ?? [:]
    XCTAssertEqual(entry["symlinkTarget"] as? String, "/abs")
    XCTAssertNil(entry["type"])
    XCTAssertEqual(
      try client.rpc("ListDir", #"{"path":"/absdir"}"#).json["code"] as? String, "not_found")
  }

  func testRelativeSymlinkClimbingOutIsClampedAtTheRoot() throws {
    let climb =
      String(repeating: "../", count: 12) + String(outside.path.dropFirst()) + "/secret.txt"
    XCTAssertEqual(symlink(climb, hostPath("rel")), 0)
    let download = try client.download("/rel")
    XCTAssertFalse(download.text.contains("outside secret"))
    XCTAssertNotEqual(download.status, 200)
  }

  func testUploadAndMakeDirThroughEscapingSymlinkStayInside() throws {
    XCTAssertEqual(symlink(outside.path, hostPath("out")), 0)
    _ = try client.upload("/out/planted.txt", Data("x".utf8))
    _ = try client.rpc("MakeDir", #"{"path":"/out/planted-dir"}"#)
    _ = try client.rpc("Move", #"{"source":"/out","destination":"/out/x"}"#)
    XCTAssertFalse(FileManager.default.fileExists(atPath: outside.path + "/planted.txt"))
    XCTAssertFalse(FileManager.default.fileExists(atPath: outside.path + "/planted-dir"))
    XCTAssertEqual(try client.rpc("Remove", #"{"path":"/out/secret.txt"}"#).status, 200)
    XCTAssertTrue(FileManager.default.fileExists(atPath: outside.path + "/secret.txt"))
  }
}
