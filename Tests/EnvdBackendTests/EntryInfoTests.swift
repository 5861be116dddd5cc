import Backend
import XCTest

@testable import EnvdBackend

/// EntryInfo as envd emits it (protobuf JSON, protocol doc §5.4 and §6.1) → RemoteAttributes.
final class EntryInfoTests: XCTestCase {
  private func decode(_ json: String) throws -> EntryInfo {
    try XCTUnwrap(decodeJSON(EntryResponse.self, Array(json.utf8)).entry)
  }

  func testRegularFile() throws {
    let entry = try decode(
      #"{"entry":{"name":"a.txt","type":"FILE_TYPE_FILE","path":"/home/user/a.txt","size":"1048576","mode":420,"permissions":"-rw-r--r--","owner":"user","group":"users","modifiedTime":"2026-08-01T10:00:00.123456789Z","metadata":{"k":"v"}}}"#
    )
    let attributes = entry.attributes
    XCTAssertEqual(entry.baseName, "a.txt")
    XCTAssertEqual(attributes.type, .regular)
    XCTAssertEqual(attributes.size, 1_048_576)
    XCTAssertEqual(attributes.permissions, 0o644)
    XCTAssertEqual(attributes.owner, "user")
    XCTAssertEqual(attributes.group, "users")
    XCTAssertEqual(
      attributes.modificationTime, RemoteTime(seconds: 1_785_578_400, nanoseconds: 123_456_789))
  }

  func testOmittedZeroValues() throws {
    let entry = try decode(
      #"{"entry":{"name":"empty","type":"FILE_TYPE_FILE","permissions":"----------"}}"#)
    XCTAssertEqual(entry.attributes.size, 0)
    XCTAssertEqual(entry.attributes.permissions, 0)
    XCTAssertEqual(entry.attributes.modificationTime, RemoteTime(seconds: 0))
  }

  func testDirectoryWithSpecialBits() throws {
    let sticky = try decode(
      #"{"entry":{"name":"tmp","type":"FILE_TYPE_DIRECTORY","size":"4096","mode":511,"permissions":"dtrwxrwxrwx"}}"#
    )
    XCTAssertEqual(sticky.attributes.type, .directory)
    XCTAssertEqual(sticky.attributes.permissions, 0o1777)
    let setgid = try decode(
      #"{"entry":{"name":"g","type":"FILE_TYPE_DIRECTORY","permissions":"dgrwxr-xr-x"}}"#)
    XCTAssertEqual(setgid.attributes.permissions, 0o2755)
    let setuid = try decode(
      #"{"entry":{"name":"su","type":"FILE_TYPE_FILE","permissions":"urwxr-xr-x"}}"#)
    XCTAssertEqual(setuid.attributes.type, .regular)
    XCTAssertEqual(setuid.attributes.permissions, 0o4755)
  }

  func testSymlinks() throws {
    // type and mode describe the target; permissions the link itself.
    let link = try decode(
      #"{"entry":{"name":"l","type":"FILE_TYPE_DIRECTORY","path":"/a/l","size":"3","mode":493,"permissions":"Lrwxrwxrwx","symlinkTarget":"/a/dir"}}"#
    )
    XCTAssertEqual(link.attributes.type, .symlink)
    XCTAssertEqual(link.attributes.permissions, 0o777)
    XCTAssertEqual(link.attributes.size, 3)
    XCTAssertTrue(link.leadsToDirectory)
    let dangling = try decode(
      #"{"entry":{"name":"d","path":"/a/d","size":"7","permissions":"Lrwxrwxrwx","symlinkTarget":"/a/d"}}"#
    )
    XCTAssertEqual(dangling.attributes.type, .symlink)
    XCTAssertFalse(dangling.leadsToDirectory)
    let byTargetOnly = try decode(
      #"{"entry":{"name":"x","type":"FILE_TYPE_FILE","symlinkTarget":"/y"}}"#)
    XCTAssertEqual(byTargetOnly.attributes.type, .symlink)
  }

  func testSpecialFilesTypedFromPermissions() throws {
    let cases: [(String, RemoteFileType)] = [
      ("Dcrw-rw-rw-", .characterDevice), ("Drw-rw----", .blockDevice), ("prw-r--r--", .fifo),
      ("Srwxr-xr-x", .socket),
    ]
    for (permissions, type) in cases {
      let entry = try decode(#"{"entry":{"name":"n","permissions":"\#(permissions)"}}"#)
      XCTAssertEqual(entry.attributes.type, type, permissions)
    }
  }

  func testOldEnvdWithoutPermissions() throws {
    let entry = try decode(
      #"{"entry":{"name":"d","type":"FILE_TYPE_DIRECTORY","path":"/d","mode":493}}"#)
    XCTAssertEqual(entry.attributes.type, .directory)
    XCTAssertEqual(entry.attributes.permissions, 0o755)
  }

  func testListDirAnswerAndNumericSize() throws {
    let response = try decodeJSON(
      ListDirResponse.self,
      Array(#"{"entries":[{"name":"a","size":12},{"path":"/r/b","size":"5"}],"extra":1}"#.utf8))
    let entries = try XCTUnwrap(response.entries)
    XCTAssertEqual(entries.map(\.baseName), ["a", "b"])
    XCTAssertEqual(entries.map(\.attributes.size), [12, 5])
    XCTAssertNil(try decodeJSON(ListDirResponse.self, Array("{}".utf8)).entries)
  }

  func testRFC3339() {
    XCTAssertEqual(RFC3339.parse("1970-01-01T00:00:00Z"), RemoteTime(seconds: 0))
    XCTAssertEqual(RFC3339.parse("2026-08-01T10:00:00Z"), RemoteTime(seconds: 1_785_578_400))
    XCTAssertEqual(
      RFC3339.parse("2026-08-01T10:00:00.5Z"),
      RemoteTime(seconds: 1_785_578_400, nanoseconds: 500_000_000))
    XCTAssertEqual(
      RFC3339.parse("2026-08-01T10:00:00.123Z"),
      RemoteTime(seconds: 1_785_578_400, nanoseconds: 123_000_000))
    XCTAssertEqual(
      RFC3339.parse("2026-08-01T10:00:00.123456Z"),
      RemoteTime(seconds: 1_785_578_400, nanoseconds: 123_456_000))
    XCTAssertEqual(RFC3339.parse("2026-08-01T12:30:00+02:30"), RemoteTime(seconds: 1_785_578_400))
    XCTAssertEqual(RFC3339.parse("1969-12-31T23:59:59Z"), RemoteTime(seconds: -1))
    XCTAssertEqual(RFC3339.parse("2000-02-29T00:00:00Z"), RemoteTime(seconds: 951_782_400))
    XCTAssertNil(RFC3339.parse("2026-08-01 10:00"))
    XCTAssertNil(RFC3339.parse("2026-08-01T10:00:00"))
    XCTAssertNil(RFC3339.parse("2026-13-01T10:00:00Z"))
    XCTAssertNil(RFC3339.parse("2026-08-01T10:00:00.Z"))
  }

  func testQueryEncoding() {
    XCTAssertEqual(
      QueryEncoding.encode("/home/user/a b&c=d?#%é"), "/home/user/a%20b%26c%3Dd%3F%23%25%C3%A9")
    XCTAssertEqual(QueryEncoding.encode("A-z_0.9~"), "A-z_0.9~")
  }

  func testContentRangeStart() {
    XCTAssertEqual(TruncationCheck.rangeStart("bytes 100-199/1000"), 100)
    XCTAssertEqual(TruncationCheck.rangeStart("bytes 0-0/*"), 0)
    XCTAssertNil(TruncationCheck.rangeStart("bytes */1000"))
    XCTAssertNil(TruncationCheck.rangeStart(nil))
    XCTAssertEqual(TruncationCheck.expectedCount(offset: 0, length: 10, expectedSize: 0), nil)
    XCTAssertEqual(TruncationCheck.expectedCount(offset: 95, length: 10, expectedSize: 100), 5)
    XCTAssertEqual(TruncationCheck.expectedCount(offset: 100, length: 10, expectedSize: 100), 0)
  }
}
