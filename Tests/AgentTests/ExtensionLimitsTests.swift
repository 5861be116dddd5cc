import Foundation
import TestSupport
import XCTest

/// Device nodes, and paths at Linux's length limits.
final class ExtensionLimitsTests: ExtensionTestCase {
  override func setUpWithError() throws {
    try super.setUpWithError()
    XCTAssertEqual(chmod(root.path, 0o755), 0)
    try makeDirectory("open")
    XCTAssertEqual(chmod(hostPath("open"), 0o777), 0)
  }

  func testCharacterDevicesAreMadeInsideTheRoot() throws {
    let rdev = (1 << 8) | 3  // 1,3: /dev/null
    let reply = try client.ext(
      "Mknod", "{\"path\":\"/open/null\",\"mode\":\(S_IFCHR | 0o666),\"rdev\":\(rdev)}")
    XCTAssertEqual(reply.status, 200, reply.text)
    let info = hostLstat("open/null")
    XCTAssertEqual(info.st_mode, S_IFCHR | 0o666)
    XCTAssertEqual(info.st_rdev, UInt(rdev))
    assertAttr(reply.attr, matches: info)
    // A symlink to a folder outside the root resolves inside it: nothing is made outside.
    let outside = try TemporaryDirectory(prefix: "agent-outside")
    defer { outside.remove() }
    makeSymlink(outside.path, at: "escape")
    assertErrno(
      try client.ext(
        "Mknod", "{\"path\":\"/escape/null\",\"mode\":\(S_IFCHR | 0o666),\"rdev\":\(rdev)}"),
      "ENOENT")
    XCTAssertFalse(FileManager.default.fileExists(atPath: outside.path + "/null"))
    // The kernel decides for a caller: without CAP_MKNOD it is EPERM.
    guard geteuid() == 0 else { return }
    assertErrno(
      try client.ext(
        "Mknod",
        "{\"path\":\"/open/n2\",\"mode\":\(S_IFCHR | 0o666),\"rdev\":\(rdev),\(ExtensionCallerTests.nobody)}"
      ),
      "EPERM")
  }

  /// 15 folders of 255 bytes and a 255-byte name: 4095 bytes relative to the root.
  func testPathsUpToLinuxsLimitWork() throws {
    let folders = (0..<15).map {
      String(repeating: String(UnicodeScalar(UInt8(97 + $0))), count: 255)
    }
    var path = ""
    for folder in folders {
      path += "/" + folder
      let reply = try client.ext("Mkdir", "{\"path\":\"\(path)\"}")
      XCTAssertEqual(reply.status, 200, reply.text)
    }
    let file = path + "/" + String(repeating: "z", count: 255)
    XCTAssertEqual(file.utf8.count, 4096)  // With the protocol's leading "/".
    let created = try client.ext("Create", "{\"path\":\"\(file)\"}")
    XCTAssertEqual(created.status, 200, created.text)
    XCTAssertEqual(try client.ext("Stat", "{\"path\":\"\(file)\"}").status, 200)
    let written = try client.writeAt(file, Data("deep".utf8))
    XCTAssertEqual(written.status, 200, written.text)
    XCTAssertEqual(try client.download(file).body, Data("deep".utf8))
    let uploaded = try client.upload(file, Data("envd".utf8))
    XCTAssertEqual(uploaded.status, 200, uploaded.text)
    XCTAssertEqual(try client.download(file).body, Data("envd".utf8))
    // Every byte percent-encoded: a 12 KB request target still fits the HTTP head.
    let encoded = file.utf8.map { String(format: "%%%02X", $0) }.joined()
    let viaEncodedQuery = try client.request(
      "/sandboxagent/v1/files?path=\(encoded)", method: "POST",
      headers: ["Content-Type: application/octet-stream"], body: Data("encoded".utf8))
    XCTAssertEqual(viaEncodedQuery.status, 200, viaEncodedQuery.text)
    XCTAssertEqual(try client.request("/files?path=\(encoded)").body, Data("encoded".utf8))
    let envdStat = try client.rpc("Stat", "{\"path\":\"\(file)\"}")
    XCTAssertEqual(envdStat.status, 200, envdStat.text)
    // One byte more, with no component over 255: ENAMETOOLONG, as Linux.
    XCTAssertEqual(try client.ext("Mkdir", "{\"path\":\"\(path)/y\"}").status, 200)
    let over = path + "/y/" + String(repeating: "z", count: 254)
    XCTAssertEqual(over.utf8.count, 4097)
    assertErrno(try client.ext("Create", "{\"path\":\"\(over)\"}"), "ENAMETOOLONG")
    let limit = path + "/y/" + String(repeating: "z", count: 253)
    XCTAssertEqual(try client.ext("Create", "{\"path\":\"\(limit)\"}").status, 200)
    assertErrno(
      try client.ext("Create", "{\"path\":\"/\(String(repeating: "n", count: 256))\"}"),
      "ENAMETOOLONG")
  }
}
