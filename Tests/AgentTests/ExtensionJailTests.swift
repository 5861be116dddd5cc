import Foundation
import TestSupport
import XCTest

/// Nothing outside the root is reachable through the extension: not by `..`, not through
/// symlinks (absolute, relative, in the middle or at the end of a path), not by `Link`.
final class ExtensionJailTests: ExtensionTestCase {
  var outside: TemporaryDirectory!
  var secret: String { outside.path + "/secret.txt" }

  override func setUpWithError() throws {
    try super.setUpWithError()
    outside = try TemporaryDirectory(prefix: "ext-outside")
    try Data("outside secret".utf8).write(to: URL(fileURLWithPath: secret))
    XCTAssertEqual(chmod(secret, 0o600), 0)
  }

  override func tearDown() {
    outside?.remove()
    super.tearDown()
  }

  func assertOutsideUntouched(file: StaticString = #filePath, line: UInt = #line) {
    var info = stat()
    XCTAssertEqual(lstat(secret, &info), 0, file: file, line: line)
    XCTAssertEqual(info.st_mode, S_IFREG | 0o600, file: file, line: line)
    XCTAssertEqual(info.st_nlink, 1, file: file, line: line)
    XCTAssertEqual([info.st_uid, info.st_gid], [0, 0], file: file, line: line)
    XCTAssertEqual(
      FileManager.default.contents(atPath: secret), Data("outside secret".utf8), file: file,
      line: line)
    XCTAssertEqual(
      try? FileManager.default.contentsOfDirectory(atPath: outside.path), ["secret.txt"],
      file: file, line: line)
  }

  func testDotDotAboveTheRootIsRefused() throws {
    let climb = "/" + String(repeating: "../", count: 12) + outside.path.dropFirst()
    let escaped = climb + "/secret.txt"
    assertErrno(try client.ext("Stat", "{\"path\":\"\(escaped)\"}"), "EACCES")
    assertErrno(try client.ext("Unlink", "{\"path\":\"\(escaped)\"}"), "EACCES")
    assertErrno(try client.ext("Setattr", "{\"path\":\"\(escaped)\",\"mode\":511}"), "EACCES")
    assertErrno(try client.ext("Create", "{\"path\":\"\(climb)/new\"}"), "EACCES")
    assertErrno(try client.ext("Mkdir", "{\"path\":\"\(climb)/newdir\"}"), "EACCES")
    assertErrno(try client.ext("Symlink", "{\"path\":\"\(climb)/l\",\"target\":\"x\"}"), "EACCES")
    try put("inside", Data())
    assertErrno(try client.ext("Link", "{\"from\":\"\(escaped)\",\"to\":\"/stolen\"}"), "EACCES")
    assertErrno(try client.ext("Link", "{\"from\":\"/inside\",\"to\":\"\(climb)/x\"}"), "EACCES")
    assertErrno(try client.ext("Rename", "{\"from\":\"/inside\",\"to\":\"\(climb)/x\"}"), "EACCES")
    assertErrno(try client.ext("Rename", "{\"from\":\"\(escaped)\",\"to\":\"/x\"}"), "EACCES")
    assertErrno(try client.ext("Stat", #"{"path":"/a/../../b"}"#), "EACCES")
    assertErrno(try client.writeAt(escaped, Data("pwned".utf8)), "EACCES")
    XCTAssertFalse(exists("stolen"))
    assertOutsideUntouched()
  }

  func testSymlinkedDirectoriesResolveInsideTheRoot() throws {
    makeSymlink(outside.path, at: "abs")
    makeSymlink(String(repeating: "../", count: 12) + outside.path.dropFirst(), at: "rel")
    for link in ["abs", "rel"] {
      assertErrno(try client.ext("Stat", "{\"path\":\"/\(link)/secret.txt\"}"), "ENOENT")
      assertErrno(try client.ext("ListDir", "{\"path\":\"/\(link)/\"}"), "ENOTDIR")
      assertErrno(try client.ext("Create", "{\"path\":\"/\(link)/planted\"}"), "ENOENT")
      assertErrno(try client.ext("Mkdir", "{\"path\":\"/\(link)/planted\"}"), "ENOENT")
      assertErrno(
        try client.ext("Symlink", "{\"path\":\"/\(link)/planted\",\"target\":\"x\"}"), "ENOENT")
      assertErrno(
        try client.ext("Setattr", "{\"path\":\"/\(link)/secret.txt\",\"mode\":511}"), "ENOENT")
      assertErrno(try client.ext("Unlink", "{\"path\":\"/\(link)/secret.txt\"}"), "ENOENT")
      assertErrno(
        try client.ext("Link", "{\"from\":\"/\(link)/secret.txt\",\"to\":\"/stolen\"}"), "ENOENT")
      assertErrno(
        try client.ext("Rename", "{\"from\":\"/\(link)/secret.txt\",\"to\":\"/stolen\"}"),
        "ENOENT")
      assertErrno(try client.writeAt("/\(link)/secret.txt", Data("pwned".utf8)), "ENOENT")
    }
    XCTAssertFalse(exists("stolen"))
    assertOutsideUntouched()
  }

  func testAFinalSymlinkToOutsideIsNeverFollowed() throws {
    makeSymlink(secret, at: "leak")
    let stat = try client.ext("Stat", #"{"path":"/leak"}"#)
    XCTAssertEqual(stat.attr["target"] as? String, secret)
    XCTAssertEqual((stat.attr["mode"] as? Int).map { mode_t($0) & S_IFMT }, S_IFLNK)
    assertErrno(try client.ext("Setattr", #"{"path":"/leak","mode":511}"#), "EOPNOTSUPP")
    assertErrno(try client.ext("Setattr", #"{"path":"/leak","size":0}"#), "EINVAL")
    XCTAssertEqual(
      try client.ext("Setattr", #"{"path":"/leak","uid":99,"mtime":"1"}"#).status, 200)
    assertErrno(try client.writeAt("/leak", Data("pwned".utf8)), "ELOOP")
    assertErrno(try client.ext("Create", #"{"path":"/leak","exclusive":false}"#), "ELOOP")
    assertErrno(try client.ext("Create", #"{"path":"/leak"}"#), "EEXIST")
    assertErrno(try client.ext("ListDir", #"{"path":"/leak"}"#), "ENOTDIR")
    assertErrno(try client.ext("Fsync", #"{"path":"/leak"}"#), "EINVAL")
    // A hard link of the symlink is another name of the symlink, never of the outside file.
    XCTAssertEqual(try client.ext("Link", #"{"from":"/leak","to":"/leak2"}"#).status, 200)
    XCTAssertEqual(hostLstat("leak2").st_mode & S_IFMT, S_IFLNK)
    XCTAssertEqual(try client.ext("Rename", #"{"from":"/leak","to":"/moved"}"#).status, 200)
    XCTAssertEqual(try client.ext("Unlink", #"{"path":"/moved"}"#).status, 200)
    assertOutsideUntouched()
  }

  func testAHardLinkToAFileOutsideCannotBeMade() throws {
    // Every way to name the outside file: by `..`, through an absolute or a relative directory
    // symlink, and through a final symlink (linked as a symlink, not as the file).
    makeSymlink(outside.path, at: "dir")
    makeSymlink(secret, at: "file")
    let climb = "/" + String(repeating: "../", count: 12) + outside.path.dropFirst()
    assertErrno(
      try client.ext("Link", "{\"from\":\"\(climb)/secret.txt\",\"to\":\"/a\"}"), "EACCES")
    assertErrno(try client.ext("Link", #"{"from":"/dir/secret.txt","to":"/b"}"#), "ENOENT")
    XCTAssertEqual(try client.ext("Link", #"{"from":"/file","to":"/c"}"#).status, 200)
    XCTAssertEqual(hostLstat("c").st_mode & S_IFMT, S_IFLNK)
    XCTAssertFalse(exists("a"))
    XCTAssertFalse(exists("b"))
    assertOutsideUntouched()
  }
}
