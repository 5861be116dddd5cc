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
}
