import Foundation
import TestSupport
import XCTest

/// Unlink, Rmdir, Mkdir, Mknod, Create, Symlink, Link and Rename: effects on disk and exact errnos.
final class ExtensionNamespaceTests: ExtensionTestCase {
  func testUnlink() throws {
    try put("f", Data("x".utf8))
    try put("target", Data("t".utf8))
    makeSymlink("target", at: "link")
    try makeDirectory("dir")
    XCTAssertEqual(try client.ext("Unlink", #"{"path":"/f"}"#).status, 200)
    XCTAssertFalse(exists("f"))
    XCTAssertEqual(try client.ext("Unlink", #"{"path":"/link"}"#).status, 200)
    XCTAssertFalse(exists("link"))
    XCTAssertTrue(exists("target"))
    assertErrno(try client.ext("Unlink", #"{"path":"/dir"}"#), "EISDIR")
    XCTAssertTrue(exists("dir"))
    assertErrno(try client.ext("Unlink", #"{"path":"/f"}"#), "ENOENT")
    assertErrno(try client.ext("Unlink", #"{"path":"/nodir/f"}"#), "ENOENT")
    assertErrno(try client.ext("Unlink", #"{"path":"/target/f"}"#), "ENOTDIR")
    assertErrno(try client.ext("Unlink", #"{"path":"/"}"#), "EISDIR")
  }

  func testRmdir() throws {
    try makeDirectory("empty")
    try put("full/f", Data())
    try put("file", Data())
    makeSymlink("empty", at: "link")
    XCTAssertEqual(try client.ext("Rmdir", #"{"path":"/empty"}"#).status, 200)
    XCTAssertFalse(exists("empty"))
    assertErrno(try client.ext("Rmdir", #"{"path":"/full"}"#), "ENOTEMPTY")
    XCTAssertTrue(exists("full/f"))
    assertErrno(try client.ext("Rmdir", #"{"path":"/file"}"#), "ENOTDIR")
    assertErrno(try client.ext("Rmdir", #"{"path":"/link"}"#), "ENOTDIR")
    assertErrno(try client.ext("Rmdir", #"{"path":"/empty"}"#), "ENOENT")
    assertErrno(try client.ext("Rmdir", #"{"path":"/"}"#), "EBUSY")
  }

  func testMkdirAppliesTheExactMode() throws {
    let sticky = try client.ext("Mkdir", #"{"path":"/open","mode":1023}"#)  // 01777
    XCTAssertEqual(sticky.status, 200, sticky.text)
    XCTAssertEqual(hostLstat("open").st_mode, S_IFDIR | 0o1777)
    assertAttr(sticky.attr, matches: hostLstat("open"))
    XCTAssertEqual(try client.ext("Mkdir", #"{"path":"/open/private","mode":448}"#).status, 200)
    XCTAssertEqual(hostLstat("open/private").st_mode, S_IFDIR | 0o700)
    XCTAssertEqual(try client.ext("Mkdir", #"{"path":"/default"}"#).status, 200)
    XCTAssertEqual(hostLstat("default").st_mode, S_IFDIR | 0o755)
  }

  func testMkdirErrors() throws {
    try makeDirectory("dir")
    try put("file", Data())
    makeSymlink("nowhere", at: "dangling")
    for path in ["/dir", "/file", "/dangling", "/"] {
      assertErrno(try client.ext("Mkdir", "{\"path\":\"\(path)\",\"mode\":493}"), "EEXIST")
    }
    XCTAssertFalse(exists("nowhere"))
    assertErrno(try client.ext("Mkdir", #"{"path":"/missing/child"}"#), "ENOENT")
    XCTAssertFalse(exists("missing"))
    assertErrno(try client.ext("Mkdir", #"{"path":"/file/child"}"#), "ENOTDIR")
    let long = String(repeating: "d", count: 256)
    assertErrno(try client.ext("Mkdir", "{\"path\":\"/\(long)\"}"), "ENAMETOOLONG")
  }

  func testMkdirInASetgidDirectoryInheritsSetgid() throws {
    try makeDirectory("shared")
    XCTAssertEqual(chown(hostPath("shared"), 0, 4321), 0)
    XCTAssertEqual(chmod(hostPath("shared"), 0o2775), 0)
    let reply = try client.ext("Mkdir", #"{"path":"/shared/sub","mode":493}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(hostLstat("shared/sub").st_mode, S_IFDIR | 0o2755)
    XCTAssertEqual(hostLstat("shared/sub").st_gid, 4321)
  }

  func testMknod() throws {
    let fifo = try client.ext("Mknod", "{\"path\":\"/fifo\",\"mode\":\(S_IFIFO | 0o640)}")
    XCTAssertEqual(fifo.status, 200, fifo.text)
    XCTAssertEqual(hostLstat("fifo").st_mode, S_IFIFO | 0o640)
    assertAttr(fifo.attr, matches: hostLstat("fifo"))
    let regular = try client.ext("Mknod", "{\"path\":\"/reg\",\"mode\":\(S_IFREG | 0o4711)}")
    XCTAssertEqual(regular.status, 200, regular.text)
    XCTAssertEqual(hostLstat("reg").st_mode, S_IFREG | 0o4711)
    let socket = try client.ext("Mknod", "{\"path\":\"/sock\",\"mode\":\(S_IFSOCK | 0o600)}")
    XCTAssertEqual(socket.status, 200, socket.text)
    XCTAssertEqual(hostLstat("sock").st_mode & S_IFMT, S_IFSOCK)
    // Device nodes are made for real (ExtensionCallerTests checks them further).
    let block = try client.ext(
      "Mknod", "{\"path\":\"/blk\",\"mode\":\(S_IFBLK | 0o600),\"rdev\":1792}")
    XCTAssertEqual(block.status, 200, block.text)
    XCTAssertEqual(hostLstat("blk").st_mode, S_IFBLK | 0o600)
    XCTAssertEqual(hostLstat("blk").st_rdev, 1792)
    assertErrno(try client.ext("Mknod", #"{"path":"/untyped","mode":420}"#), "EINVAL")
    assertErrno(
      try client.ext("Mknod", "{\"path\":\"/fifo\",\"mode\":\(S_IFIFO | 0o640)}"), "EEXIST")
  }

  func testCreateIsExclusiveWithTheExactMode() throws {
    let reply = try client.ext("Create", #"{"path":"/new","mode":2541}"#)  // 04755
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(hostLstat("new").st_mode, S_IFREG | 0o4755)
    XCTAssertEqual(hostLstat("new").st_size, 0)
    assertAttr(reply.attr, matches: hostLstat("new"))
    assertErrno(try client.ext("Create", #"{"path":"/new","mode":420}"#), "EEXIST")
    makeSymlink("elsewhere", at: "dangling")
    assertErrno(try client.ext("Create", #"{"path":"/dangling"}"#), "EEXIST")
    XCTAssertFalse(exists("elsewhere"))
    assertErrno(try client.ext("Create", #"{"path":"/missing/new"}"#), "ENOENT")
    assertErrno(try client.ext("Create", #"{"path":"/"}"#), "EEXIST")
    XCTAssertEqual(try client.ext("Create", #"{"path":"/plain"}"#).status, 200)
    XCTAssertEqual(hostLstat("plain").st_mode, S_IFREG | 0o644)
  }

  func testNonExclusiveCreateKeepsAnExistingFile() throws {
    try put("existing", Data("keep me".utf8))
    XCTAssertEqual(chmod(hostPath("existing"), 0o600), 0)
    let reply = try client.ext("Create", #"{"path":"/existing","mode":511,"exclusive":false}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    assertAttr(reply.attr, matches: hostLstat("existing"))
    XCTAssertEqual(hostLstat("existing").st_mode, S_IFREG | 0o600)
    XCTAssertEqual(contents("existing"), Data("keep me".utf8))
    XCTAssertEqual(
      try client.ext("Create", #"{"path":"/fresh","mode":384,"exclusive":false}"#).status, 200)
    XCTAssertEqual(hostLstat("fresh").st_mode, S_IFREG | 0o600)
    try makeDirectory("dir")
    makeSymlink("existing", at: "link")
    assertErrno(try client.ext("Create", #"{"path":"/dir","exclusive":false}"#), "EISDIR")
    assertErrno(try client.ext("Create", #"{"path":"/link","exclusive":false}"#), "ELOOP")
  }

  func testCreatedEntriesBelongToTheBasicUserOrTheGivenIds() throws {
    let nobody = "Authorization: Basic " + Data("nobody:".utf8).base64EncodedString()
    XCTAssertEqual(
      try client.ext("Create", #"{"path":"/n","mode":420}"#, headers: [nobody]).status, 200)
    XCTAssertEqual(hostLstat("n").st_uid, 65534)
    XCTAssertEqual(try client.ext("Mkdir", #"{"path":"/nd"}"#, headers: [nobody]).status, 200)
    XCTAssertEqual(hostLstat("nd").st_uid, 65534)
    XCTAssertEqual(
      try client.ext("Symlink", #"{"path":"/nl","target":"x"}"#, headers: [nobody]).status, 200)
    XCTAssertEqual(hostLstat("nl").st_uid, 65534)
    // Explicit ids win, and the chown does not cost the setuid bit.
    let explicit = try client.ext(
      "Create", #"{"path":"/owned","mode":3565,"uid":1234,"gid":4321}"#, headers: [nobody])
    XCTAssertEqual(explicit.status, 200, explicit.text)
    let info = hostLstat("owned")
    XCTAssertEqual([info.st_uid, info.st_gid], [1234, 4321])
    XCTAssertEqual(info.st_mode, S_IFREG | 0o6755)
    XCTAssertEqual(try client.ext("Mkdir", #"{"path":"/g","gid":77}"#).status, 200)
    XCTAssertEqual([hostLstat("g").st_uid, hostLstat("g").st_gid], [0, 77])
  }

  func testSymlinkStoresTheExactText() throws {
    for (name, text) in [
      ("rel", "../a b/./c"), ("abs", "/etc/passwd"), ("dots", ".."), ("uni", "ü/ß"),
    ] {
      let reply = try client.ext("Symlink", "{\"path\":\"/\(name)\",\"target\":\(quoted(text))}")
      XCTAssertEqual(reply.status, 200, reply.text)
      XCTAssertEqual(reply.attr["target"] as? String, text)
      XCTAssertEqual(
        try FileManager.default.destinationOfSymbolicLink(atPath: hostPath(name)), text)
      assertAttr(reply.attr, matches: hostLstat(name))
    }
    assertErrno(try client.ext("Symlink", #"{"path":"/rel","target":"x"}"#), "EEXIST")
    assertErrno(try client.ext("Symlink", #"{"path":"/empty","target":""}"#), "ENOENT")
    assertErrno(try client.ext("Symlink", #"{"path":"/none"}"#), "EINVAL")
    assertErrno(try client.ext("Symlink", #"{"path":"/no/parent","target":"x"}"#), "ENOENT")
    let bytes = Data([0x61, 0xff]).base64EncodedString()
    XCTAssertEqual(
      try client.ext("Symlink", "{\"path\":\"/raw\",\"targetBytes\":\"\(bytes)\"}").status, 200)
    var buffer = [CChar](repeating: 0, count: 16)
    XCTAssertEqual(readlink(hostPath("raw"), &buffer, 16), 2)
    XCTAssertEqual(buffer.prefix(2).map { UInt8(bitPattern: $0) }, [0x61, 0xff])
  }

  func testLinkMakesARealHardLink() throws {
    try put("a", Data("shared".utf8))
    let reply = try client.ext("Link", #"{"from":"/a","to":"/b"}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(hostLstat("b").st_ino, hostLstat("a").st_ino)
    XCTAssertEqual(hostLstat("a").st_nlink, 2)
    assertAttr(reply.attr, matches: hostLstat("b"))
    XCTAssertEqual(reply.attr["nlink"] as? Int, 2)
    assertErrno(try client.ext("Link", #"{"from":"/a","to":"/b"}"#), "EEXIST")
    assertErrno(try client.ext("Link", #"{"from":"/missing","to":"/c"}"#), "ENOENT")
    try makeDirectory("dir")
    assertErrno(try client.ext("Link", #"{"from":"/dir","to":"/dir2"}"#), "EPERM")
    assertErrno(try client.ext("Link", #"{"from":"/","to":"/rootlink"}"#), "EPERM")
    assertErrno(try client.ext("Link", #"{"from":"/a","to":"/nodir/c"}"#), "ENOENT")
  }

  func testLinkOfASymlinkLinksTheSymlinkItself() throws {
    try put("target", Data("t".utf8))
    makeSymlink("target", at: "link")
    XCTAssertEqual(try client.ext("Link", #"{"from":"/link","to":"/link2"}"#).status, 200)
    XCTAssertEqual(hostLstat("link2").st_mode & S_IFMT, S_IFLNK)
    XCTAssertEqual(hostLstat("link2").st_ino, hostLstat("link").st_ino)
    XCTAssertEqual(hostLstat("target").st_nlink, 1)
  }

  func testRenameReplacesLikeRename2() throws {
    try put("a", Data("A".utf8))
    try put("b", Data("B".utf8))
    let inode = hostLstat("a").st_ino
    XCTAssertEqual(try client.ext("Rename", #"{"from":"/a","to":"/b"}"#).status, 200)
    XCTAssertFalse(exists("a"))
    XCTAssertEqual(hostLstat("b").st_ino, inode)
    XCTAssertEqual(contents("b"), Data("A".utf8))
    assertErrno(try client.ext("Rename", #"{"from":"/a","to":"/c"}"#), "ENOENT")
    assertErrno(try client.ext("Rename", #"{"from":"/b","to":"/missing/c"}"#), "ENOENT")
    XCTAssertFalse(exists("missing"))
    try put("full/f", Data())
    try makeDirectory("empty")
    try makeDirectory("other")
    assertErrno(try client.ext("Rename", #"{"from":"/other","to":"/full"}"#), "ENOTEMPTY")
    assertErrno(try client.ext("Rename", #"{"from":"/b","to":"/empty"}"#), "EISDIR")
    assertErrno(try client.ext("Rename", #"{"from":"/other","to":"/b"}"#), "ENOTDIR")
    assertErrno(try client.ext("Rename", #"{"from":"/full","to":"/full/inside"}"#), "EINVAL")
    assertErrno(try client.ext("Rename", #"{"from":"/","to":"/x"}"#), "EBUSY")
    assertErrno(try client.ext("Rename", #"{"from":"/b","to":"/"}"#), "EBUSY")
    XCTAssertEqual(try client.ext("Rename", #"{"from":"/other","to":"/empty"}"#).status, 200)
    XCTAssertFalse(exists("other"))
  }

  func testRenameNoReplaceAndExchange() throws {
    try put("a", Data("A".utf8))
    try put("b", Data("B".utf8))
    assertErrno(try client.ext("Rename", #"{"from":"/a","to":"/b","flags":1}"#), "EEXIST")
    XCTAssertEqual(contents("b"), Data("B".utf8))
    XCTAssertEqual(try client.ext("Rename", #"{"from":"/a","to":"/c","flags":1}"#).status, 200)
    XCTAssertEqual(contents("c"), Data("A".utf8))
    try makeDirectory("dir")
    XCTAssertEqual(try client.ext("Rename", #"{"from":"/c","to":"/dir","flags":2}"#).status, 200)
    XCTAssertEqual(contents("dir"), Data("A".utf8))
    XCTAssertEqual(hostLstat("c").st_mode & S_IFMT, S_IFDIR)
    assertErrno(try client.ext("Rename", #"{"from":"/b","to":"/nothing","flags":2}"#), "ENOENT")
    assertErrno(try client.ext("Rename", #"{"from":"/b","to":"/dir","flags":3}"#), "EINVAL")
    assertErrno(try client.ext("Rename", #"{"from":"/b","to":"/dir","flags":4}"#), "EINVAL")
    XCTAssertEqual(contents("b"), Data("B".utf8))
  }
}
