import Foundation
import TestSupport
import XCTest

/// Setattr (chmod, chown, utimens, truncate in one call) and Fsync.
final class ExtensionSetattrTests: ExtensionTestCase {
  func testChmodIncludingSetuidSetgidAndSticky() throws {
    try put("f", Data())
    for mode in [0o7777, 0o4755, 0o2711, 0o1700, 0o000, 0o644] {
      let reply = try client.ext("Setattr", "{\"path\":\"/f\",\"mode\":\(mode)}")
      XCTAssertEqual(reply.status, 200, reply.text)
      XCTAssertEqual(hostLstat("f").st_mode, S_IFREG | mode_t(mode))
      assertAttr(reply.attr, matches: hostLstat("f"))
    }
    // Type bits in the request are ignored.
    XCTAssertEqual(
      try client.ext("Setattr", "{\"path\":\"/f\",\"mode\":\(S_IFDIR | 0o600)}").status, 200)
    XCTAssertEqual(hostLstat("f").st_mode, S_IFREG | 0o600)
    try makeDirectory("d")
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/d","mode":1005}"#).status, 200)
    XCTAssertEqual(hostLstat("d").st_mode, S_IFDIR | 0o1755)
  }

  func testChmodOfASymlinkIsEOPNOTSUPPAndLeavesTheTarget() throws {
    try put("target", Data())
    XCTAssertEqual(chmod(hostPath("target"), 0o600), 0)
    makeSymlink("target", at: "link")
    assertErrno(try client.ext("Setattr", #"{"path":"/link","mode":511}"#), "EOPNOTSUPP")
    XCTAssertEqual(hostLstat("target").st_mode, S_IFREG | 0o600)
  }

  func testChownWithNumericIdsActsOnTheEntryItself() throws {
    try put("f", Data())
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/f","uid":1001}"#).status, 200)
    XCTAssertEqual([hostLstat("f").st_uid, hostLstat("f").st_gid], [1001, 0])
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/f","gid":"2002"}"#).status, 200)
    XCTAssertEqual([hostLstat("f").st_uid, hostLstat("f").st_gid], [1001, 2002])
    makeSymlink("f", at: "link")
    let reply = try client.ext("Setattr", #"{"path":"/link","uid":3003,"gid":3003}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual([hostLstat("link").st_uid, hostLstat("link").st_gid], [3003, 3003])
    XCTAssertEqual([hostLstat("f").st_uid, hostLstat("f").st_gid], [1001, 2002])
    XCTAssertEqual(reply.attr["target"] as? String, "f")
  }

  func testChownClearsSetuidLikeLinux() throws {
    try put("f", Data())
    XCTAssertEqual(chmod(hostPath("f"), 0o6755), 0)
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/f","uid":5}"#).status, 200)
    XCTAssertEqual(hostLstat("f").st_mode, S_IFREG | 0o755)
  }

  func testUtimensWithNanosecondsNowAndOmit() throws {
    try put("f", Data())
    setTimes(
      "f", access: timespec(tv_sec: 1_000_000_000, tv_nsec: 111),
      modification: timespec(tv_sec: 1_100_000_000, tv_nsec: 222))
    let reply = try client.ext(
      "Setattr", #"{"path":"/f","mtime":"1700000000","mtimeNsec":123456789}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    var info = hostLstat("f")
    XCTAssertEqual([info.st_mtim.tv_sec, info.st_mtim.tv_nsec], [1_700_000_000, 123_456_789])
    XCTAssertEqual([info.st_atim.tv_sec, info.st_atim.tv_nsec], [1_000_000_000, 111])  // omitted
    assertAttr(reply.attr, matches: info)

    let before = Date().timeIntervalSince1970
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/f","atimeNow":true}"#).status, 200)
    info = hostLstat("f")
    XCTAssertGreaterThanOrEqual(Double(info.st_atim.tv_sec) + 1, before)
    XCTAssertEqual([info.st_mtim.tv_sec, info.st_mtim.tv_nsec], [1_700_000_000, 123_456_789])

    XCTAssertEqual(
      try client.ext("Setattr", #"{"path":"/f","atime":-5,"atimeNsec":"7","mtime":0}"#).status,
      200)
    info = hostLstat("f")
    XCTAssertEqual([info.st_atim.tv_sec, info.st_atim.tv_nsec], [-5, 7])
    XCTAssertEqual([info.st_mtim.tv_sec, info.st_mtim.tv_nsec], [0, 0])
    assertErrno(
      try client.ext("Setattr", #"{"path":"/f","mtime":1,"mtimeNsec":1000000000}"#), "EINVAL")
  }

  func testUtimensOfASymlinkSetsTheLinksOwnTimes() throws {
    try put("target", Data())
    setTimes(
      "target", access: timespec(tv_sec: 5, tv_nsec: 0),
      modification: timespec(tv_sec: 5, tv_nsec: 0))
    makeSymlink("target", at: "link")
    XCTAssertEqual(
      try client.ext("Setattr", #"{"path":"/link","mtime":"1234","mtimeNsec":5}"#).status, 200)
    XCTAssertEqual(hostLstat("link").st_mtim.tv_sec, 1234)
    XCTAssertEqual(hostLstat("link").st_mtim.tv_nsec, 5)
    XCTAssertEqual(hostLstat("target").st_mtim.tv_sec, 5)
  }

  func testTruncateInPlaceToAnySize() throws {
    try put("f", Data("0123456789".utf8))
    let inode = hostLstat("f").st_ino
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/f","size":"4"}"#).status, 200)
    XCTAssertEqual(contents("f"), Data("0123".utf8))
    let grown = try client.ext("Setattr", #"{"path":"/f","size":8}"#)
    XCTAssertEqual(grown.status, 200)
    XCTAssertEqual(contents("f"), Data("0123".utf8) + Data(count: 4))
    XCTAssertEqual(grown.attr["size"] as? String, "8")
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/f","size":0}"#).status, 200)
    XCTAssertEqual(contents("f"), Data())
    XCTAssertEqual(hostLstat("f").st_ino, inode)
    try makeDirectory("d")
    assertErrno(try client.ext("Setattr", #"{"path":"/d","size":0}"#), "EISDIR")
    XCTAssertEqual(mkfifo(hostPath("fifo"), 0o600), 0)
    assertErrno(try client.ext("Setattr", #"{"path":"/fifo","size":0}"#), "EINVAL")
    makeSymlink("f", at: "link")
    assertErrno(try client.ext("Setattr", #"{"path":"/link","size":0}"#), "EINVAL")
    assertErrno(try client.ext("Setattr", #"{"path":"/f","size":-1}"#), "EINVAL")
  }

  func testEverythingInOneCall() throws {
    try put("f", Data("content".utf8))
    let reply = try client.ext(
      "Setattr",
      #"{"path":"/f","size":"3","uid":42,"gid":43,"mode":2541,"#
        + #""atime":"1600000000","atimeNsec":1,"mtime":"1600000001","mtimeNsec":999999999}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    let info = hostLstat("f")
    XCTAssertEqual(contents("f"), Data("con".utf8))
    XCTAssertEqual([info.st_uid, info.st_gid], [42, 43])
    XCTAssertEqual(info.st_mode, S_IFREG | 0o4755)
    XCTAssertEqual([info.st_atim.tv_sec, info.st_atim.tv_nsec], [1_600_000_000, 1])
    XCTAssertEqual([info.st_mtim.tv_sec, info.st_mtim.tv_nsec], [1_600_000_001, 999_999_999])
    assertAttr(reply.attr, matches: info)
  }

  func testSetattrOfTheRootAndOfNothing() throws {
    XCTAssertEqual(chmod(root.path, 0o755), 0)
    XCTAssertEqual(try client.ext("Setattr", #"{"path":"/","mode":448}"#).status, 200)
    XCTAssertEqual(hostLstat("").st_mode, S_IFDIR | 0o700)
    assertErrno(try client.ext("Setattr", #"{"path":"/missing","mode":448}"#), "ENOENT")
    let empty = try client.ext("Setattr", #"{"path":"/"}"#)
    XCTAssertEqual(empty.status, 200)
    assertAttr(empty.attr, matches: hostLstat(""))
  }

  func testFsync() throws {
    try put("d/f", Data("x".utf8))
    XCTAssertEqual(try client.ext("Fsync", #"{"path":"/d/f"}"#).status, 200)
    XCTAssertEqual(try client.ext("Fsync", #"{"path":"/d/f","dataOnly":true}"#).status, 200)
    XCTAssertEqual(try client.ext("Fsync", #"{"path":"/d"}"#).status, 200)
    assertErrno(try client.ext("Fsync", #"{"path":"/d/missing"}"#), "ENOENT")
    XCTAssertEqual(mkfifo(hostPath("fifo"), 0o600), 0)
    assertErrno(try client.ext("Fsync", #"{"path":"/fifo"}"#), "EINVAL")
  }
}
