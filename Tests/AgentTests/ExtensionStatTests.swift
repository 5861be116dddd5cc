import Foundation
import TestSupport
import XCTest

/// Stat, ListDir, Readlink and Statfs against lstat/statvfs of the root on disk.
final class ExtensionStatTests: ExtensionTestCase {
  func testStatOfAFileIsItsLstat() throws {
    try put("d/f.txt", Data("12345".utf8))
    XCTAssertEqual(chmod(hostPath("d/f.txt"), 0o6755), 0)
    XCTAssertEqual(chown(hostPath("d/f.txt"), 1234, 4321), 0)
    XCTAssertEqual(chmod(hostPath("d/f.txt"), 0o6755), 0)
    setTimes(
      "d/f.txt", access: timespec(tv_sec: 1_600_000_000, tv_nsec: 1),
      modification: timespec(tv_sec: 1_700_000_000, tv_nsec: 123_456_789))
    let reply = try client.ext("Stat", #"{"path":"/d/f.txt"}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    let attr = reply.attr
    assertAttr(attr, matches: hostLstat("d/f.txt"))
    XCTAssertEqual(attr["mode"] as? Int, Int(S_IFREG | 0o6755))
    XCTAssertEqual(attr["uid"] as? Int, 1234)
    XCTAssertEqual(attr["gid"] as? Int, 4321)
    XCTAssertEqual(attr["mtime"] as? String, "1700000000")
    XCTAssertEqual(attr["mtimeNsec"] as? Int, 123_456_789)
    XCTAssertEqual(attr["atimeNsec"] as? Int, 1)
    XCTAssertNil(attr["target"])
    XCTAssertNil(attr["name"])
  }

  func testStatOfRootDirectoryFifoAndHardLinks() throws {
    try makeDirectory("dir")
    XCTAssertEqual(chmod(hostPath("dir"), 0o1777), 0)
    XCTAssertEqual(mkfifo(hostPath("fifo"), 0o640), 0)
    try put("a", Data("x".utf8))
    XCTAssertEqual(link(hostPath("a"), hostPath("b")), 0)
    assertAttr(try client.ext("Stat", #"{"path":"/"}"#).attr, matches: hostLstat(""))
    assertAttr(try client.ext("Stat", #"{"path":"/dir"}"#).attr, matches: hostLstat("dir"))
    assertAttr(try client.ext("Stat", #"{"path":"/fifo"}"#).attr, matches: hostLstat("fifo"))
    let linked = try client.ext("Stat", #"{"path":"/b"}"#).attr
    XCTAssertEqual(linked["nlink"] as? Int, 2)
    XCTAssertEqual(linked["ino"] as? String, String(hostLstat("a").st_ino))
    // Lexical cleaning: `//`, `.` and `..` inside the root.
    assertAttr(
      try client.ext("Stat", #"{"path":"//dir/./../a"}"#).attr, matches: hostLstat("a"))
  }

  func testStatOfSymlinksGivesTheRawTextAndIsNotFollowed() throws {
    try makeDirectory("d")
    makeSymlink("../x y/z", at: "d/relative")
    makeSymlink("/etc/passwd", at: "absolute")
    makeSymlink("nowhere", at: "dangling")
    for (path, text) in [
      ("d/relative", "../x y/z"), ("absolute", "/etc/passwd"), ("dangling", "nowhere"),
    ] {
      let attr = try client.ext("Stat", "{\"path\":\"/\(path)\"}").attr
      XCTAssertEqual(attr["target"] as? String, text)
      XCTAssertEqual((attr["mode"] as? Int).map { mode_t($0) & S_IFMT }, S_IFLNK)
      XCTAssertEqual(attr["size"] as? String, String(text.utf8.count))
      assertAttr(attr, matches: hostLstat(path))
    }
  }

  func testStatThroughASymlinkedDirectoryStaysInside() throws {
    try put("real/f", Data("inside".utf8))
    makeSymlink("/real", at: "alias")
    assertAttr(try client.ext("Stat", #"{"path":"/alias/f"}"#).attr, matches: hostLstat("real/f"))
  }

  func testStatErrors() throws {
    try put("file", Data())
    assertErrno(try client.ext("Stat", #"{"path":"/missing"}"#), "ENOENT")
    assertErrno(try client.ext("Stat", #"{"path":"/file/below"}"#), "ENOTDIR")
    assertErrno(try client.ext("Stat", #"{"path":"relative"}"#), "EINVAL")
    assertErrno(try client.ext("Stat", #"{"path":"~/x"}"#), "EINVAL")
    let long = String(repeating: "n", count: 256)
    assertErrno(try client.ext("Stat", "{\"path\":\"/\(long)\"}"), "ENAMETOOLONG")
    let huge = String(repeating: "/abc", count: 1100)
    assertErrno(try client.ext("Stat", "{\"path\":\"\(huge)\"}"), "ENAMETOOLONG")
    assertErrno(try client.ext("Stat", #"{"path":"/a\u0000b"}"#), "EINVAL")
    makeSymlink("loop", at: "loop")
    assertErrno(try client.ext("Stat", #"{"path":"/loop/x"}"#), "ELOOP")
  }

  func testListDirGivesEveryEntryWithItsLstat() throws {
    try put("d/file", Data("abc".utf8))
    try makeDirectory("d/sub")
    makeSymlink("file", at: "d/link")
    XCTAssertEqual(mkfifo(hostPath("d/fifo"), 0o600), 0)
    XCTAssertEqual(link(hostPath("d/file"), hostPath("d/hard")), 0)
    try put("d/sub/deeper", Data())
    let reply = try client.ext("ListDir", #"{"path":"/d"}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    let entries = reply.json["entries"] as? [[String: Any]] ?? []
    XCTAssertEqual(
      entries.compactMap { $0["name"] as? String }, ["fifo", "file", "hard", "link", "sub"])
    for entry in entries {
      let name = entry["name"] as? String ?? ""
      assertAttr(entry, matches: hostLstat("d/" + name))
    }
    XCTAssertEqual(entries.first { $0["name"] as? String == "link" }?["target"] as? String, "file")
    XCTAssertEqual(entries.first { $0["name"] as? String == "hard" }?["nlink"] as? Int, 2)
    assertAttr(reply.attr, matches: hostLstat("d"))
    let empty = try client.ext("ListDir", #"{"path":"/d/sub/../sub"}"#)
    XCTAssertEqual((empty.json["entries"] as? [Any])?.count, 1)
    let root = try client.ext("ListDir", #"{"path":"/"}"#)
    XCTAssertEqual((root.json["entries"] as? [[String: Any]])?.first?["name"] as? String, "d")
  }

  func testListDirErrors() throws {
    try put("file", Data())
    try makeDirectory("dir")
    makeSymlink("dir", at: "dirlink")
    assertErrno(try client.ext("ListDir", #"{"path":"/missing"}"#), "ENOENT")
    assertErrno(try client.ext("ListDir", #"{"path":"/file"}"#), "ENOTDIR")
    assertErrno(try client.ext("ListDir", #"{"path":"/dirlink"}"#), "ENOTDIR")
    // Trailing slashes are dropped by the lexical cleaning; the link is still not followed.
    assertErrno(try client.ext("ListDir", #"{"path":"/dirlink/"}"#), "ENOTDIR")
  }

  func testNamesAndTargetsThatAreNotUTF8TravelAsBytes() throws {
    let rawName: [UInt8] = Array("bad-".utf8) + [0xff, 0xfe]
    let hostName = Array(hostPath("").utf8) + rawName
    let fd = open(hostName.map { CChar(bitPattern: $0) } + [0], O_CREAT | O_WRONLY, 0o644)
    XCTAssertGreaterThanOrEqual(fd, 0)
    close(fd)
    let linkText: [UInt8] = [0x2e, 0x2f, 0xc3, 0x28]
    XCTAssertEqual(
      symlink(
        linkText.map { CChar(bitPattern: $0) } + [0],
        Array(hostPath("badlink").utf8).map { CChar(bitPattern: $0) } + [0]), 0)
    let listing = try client.ext("ListDir", #"{"path":"/"}"#)
    XCTAssertEqual(listing.status, 200, listing.text)
    let entries = listing.json["entries"] as? [[String: Any]] ?? []
    let encodedName = Data(rawName).base64EncodedString()
    XCTAssertEqual(entries.count, 2)
    XCTAssertEqual(entries[0]["nameBytes"] as? String, encodedName)
    XCTAssertNil(entries[0]["name"])
    XCTAssertEqual(entries[1]["name"] as? String, "badlink")
    XCTAssertEqual(entries[1]["targetBytes"] as? String, Data(linkText).base64EncodedString())
    XCTAssertNil(entries[1]["target"])

    let pathBytes = Data([0x2f] + rawName).base64EncodedString()
    let stat = try client.ext("Stat", "{\"pathBytes\":\"\(pathBytes)\"}")
    XCTAssertEqual(stat.status, 200, stat.text)
    XCTAssertEqual(stat.attr["size"] as? String, "0")
    let readlink = try client.ext("Readlink", #"{"path":"/badlink"}"#)
    XCTAssertEqual(readlink.json["targetBytes"] as? String, Data(linkText).base64EncodedString())
    let written = try client.request(
      "/sandboxagent/v1/files?path=/bad-%FF%FE", method: "POST",
      headers: ["Content-Type: application/octet-stream"], body: Data("data".utf8))
    XCTAssertEqual(written.status, 200, written.text)
    XCTAssertEqual(written.attr["size"] as? String, "4")
    XCTAssertEqual(
      try client.ext("Unlink", "{\"pathBytes\":\"\(pathBytes)\"}").status, 200)
    XCTAssertEqual(
      (try client.ext("ListDir", #"{"path":"/"}"#).json["entries"] as? [Any])?.count, 1)
  }

  func testNonUTF8DirectoryComponentsAreWalked() throws {
    let rawDirectory: [UInt8] = [0x64, 0xff]
    let hostDirectory = Array(hostPath("").utf8) + rawDirectory
    XCTAssertEqual(mkdir(hostDirectory.map { CChar(bitPattern: $0) } + [0], 0o755), 0)
    let pathBytes = Data([0x2f] + rawDirectory + Array("/inner".utf8)).base64EncodedString()
    let made = try client.ext("Mkdir", "{\"pathBytes\":\"\(pathBytes)\",\"mode\":448}")
    XCTAssertEqual(made.status, 200, made.text)
    XCTAssertEqual(made.attr["mode"] as? Int, Int(S_IFDIR | 0o700))
    let listed = try client.ext(
      "ListDir", "{\"pathBytes\":\"\(Data([0x2f] + rawDirectory).base64EncodedString())\"}")
    XCTAssertEqual(
      (listed.json["entries"] as? [[String: Any]])?.first?["name"] as? String, "inner")
  }

  func testReadlink() throws {
    makeSymlink("../some where/ü", at: "link")
    try put("file", Data())
    let reply = try client.ext("Readlink", #"{"path":"/link"}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.json["target"] as? String, "../some where/ü")
    assertErrno(try client.ext("Readlink", #"{"path":"/file"}"#), "EINVAL")
    assertErrno(try client.ext("Readlink", #"{"path":"/"}"#), "EINVAL")
    assertErrno(try client.ext("Readlink", #"{"path":"/missing"}"#), "ENOENT")
  }

  func testStatfsIsStatvfsOfTheRoot() throws {
    let reply = try client.ext("Statfs", "{}")
    XCTAssertEqual(reply.status, 200, reply.text)
    var info = statvfs()
    XCTAssertEqual(statvfs(root.path, &info), 0)
    XCTAssertEqual(reply.json["bsize"] as? Int, Int(info.f_bsize))
    XCTAssertEqual(reply.json["frsize"] as? Int, Int(info.f_frsize))
    XCTAssertEqual(reply.json["blocks"] as? String, String(info.f_blocks))
    XCTAssertEqual(reply.json["files"] as? String, String(info.f_files))
    XCTAssertEqual(reply.json["namemax"] as? Int, Int(info.f_namemax))
    // Free counts move with whatever else runs on the machine.
    let free = UInt64(reply.json["bfree"] as? String ?? "") ?? 0
    XCTAssertLessThan(abs(Double(free) - Double(info.f_bfree)), Double(info.f_blocks) / 100)
    XCTAssertNotNil(UInt64(reply.json["bavail"] as? String ?? ""))
    XCTAssertNotNil(UInt64(reply.json["ffree"] as? String ?? ""))
  }
}
