import Foundation
import TestSupport
import XCTest

/// The errno values ordinary calls get, as on a local folder.
final class ErrorTests: MountTestCase {
  private func errnoOf(_ call: () -> Int32) -> Int32 {
    errno = 0
    return call() == -1 ? errno : 0
  }

  func testMissingFileIsENOENT() throws {
    XCTAssertEqual(errnoOf { open(mountpoint + "/missing.txt", O_RDONLY) }, ENOENT)
    XCTAssertEqual(errnoOf { unlink(mountpoint + "/missing.txt") }, ENOENT)
    XCTAssertEqual(errnoOf { mkdir(mountpoint + "/missing/child", 0o755) }, ENOENT)
    XCTAssertEqual(errnoOf { rename(mountpoint + "/missing.txt", mountpoint + "/x") }, ENOENT)
  }

  func testOpeningADirectoryForWritingIsEISDIR() throws {
    try sh("mkdir root/folder")
    XCTAssertEqual(errnoOf { open(mountpoint + "/folder", O_WRONLY) }, EISDIR)
    XCTAssertEqual(errnoOf { unlink(mountpoint + "/folder") }, EISDIR)
  }

  func testRemovingAFullDirectoryIsENOTEMPTY() throws {
    try sh("mkdir root/full && echo x > root/full/file")
    XCTAssertEqual(errnoOf { rmdir(mountpoint + "/full") }, ENOTEMPTY)
    XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/full/file"))
  }

  func testMakingWhatExistsIsEEXIST() throws {
    try sh("mkdir root/here && echo x > root/file")
    XCTAssertEqual(errnoOf { mkdir(mountpoint + "/here", 0o755) }, EEXIST)
    XCTAssertEqual(errnoOf { mkdir(mountpoint + "/file", 0o755) }, EEXIST)
    XCTAssertEqual(
      errnoOf { open(mountpoint + "/file", O_WRONLY | O_CREAT | O_EXCL, 0o644) }, EEXIST)
  }
}
