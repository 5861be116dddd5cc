import Backend
import XCTest

@testable import EnvdBackend

/// The errno mapping of protocol doc §8, on answers as envd, connect-go and the E2B proxy write them.
final class EnvdErrorMappingTests: XCTestCase {
  private func errno(_ status: Int, _ body: String) -> Int32 {
    EnvdErrorMapping.remoteError(status: status, body: Array(body.utf8), context: "op /x").errno
  }

  func testConnectCodes() {
    XCTAssertEqual(
      errno(
        404,
        #"{"code":"not_found","message":"file not found: lstat /x: no such file or directory"}"#),
      ENOENT)
    XCTAssertEqual(
      errno(409, #"{"code":"already_exists","message":"directory already exists"}"#), EEXIST)
    XCTAssertEqual(
      errno(401, #"{"code":"unauthenticated","message":"invalid username: 'nobody2'"}"#), EACCES)
    XCTAssertEqual(errno(403, #"{"code":"permission_denied","message":"no"}"#), EACCES)
    XCTAssertEqual(errno(503, #"{"code":"unavailable","message":"later"}"#), EIO)
    XCTAssertEqual(errno(501, #"{"code":"unimplemented","message":"no such method"}"#), EOPNOTSUPP)
    XCTAssertEqual(
      errno(400, #"{"code":"invalid_argument","message":"path is not a directory: /a/f"}"#), ENOTDIR
    )
    XCTAssertEqual(
      errno(400, #"{"code":"failed_precondition","message":"cyclic symlink or chain >255 links"}"#),
      ELOOP)
    XCTAssertEqual(errno(400, #"{"code":"invalid_argument","message":"bad path"}"#), EINVAL)
    XCTAssertEqual(errno(500, #"{"code":"internal","message":"weird"}"#), EIO)
  }

  func testInternalMessagesAreClassifiedByErrnoText() {
    let cases: [(String, Int32)] = [
      ("error renaming: rename /a /b: directory not empty", ENOTEMPTY),
      ("rename /a /b: file exists", EEXIST),
      ("rename /a /b: not a directory", ENOTDIR),
      ("rename /a /b: is a directory", EISDIR),
      ("rename /a /b: invalid cross-device link", EXDEV),
      ("open /a: permission denied", EACCES),
      ("remove /a: operation not permitted", EPERM),
      ("mkdir /a: read-only file system", EROFS),
      ("write /a: no space left on device", ENOSPC),
      ("write /a: disk quota exceeded", EDQUOT),
      ("stat /a: too many levels of symbolic links", ELOOP),
      ("stat /aaaa: file name too long", ENAMETOOLONG),
    ]
    for (message, expected) in cases {
      XCTAssertEqual(errno(500, #"{"code":"internal","message":"\#(message)"}"#), expected, message)
    }
  }

  func testEnvdHTTPErrorsCarryIntegerCodes() {
    XCTAssertEqual(errno(404, #"{"code":404,"message":"path '/x' does not exist"}"#), ENOENT)
    XCTAssertEqual(errno(400, #"{"code":400,"message":"path '/d' is a directory"}"#), EISDIR)
    XCTAssertEqual(errno(400, #"{"code":400,"message":"path is a directory: /d"}"#), EISDIR)
    XCTAssertEqual(
      errno(401, #"{"code":401,"message":"access token present in header but does not match"}"#),
      EACCES)
    XCTAssertEqual(
      errno(
        507,
        #"{"code":507,"message":"attempted to write 10 bytes: not enough disk space available"}"#),
      ENOSPC)
    XCTAssertEqual(
      errno(500, #"{"code":500,"message":"error ensuring directories: path is a file: /a"}"#),
      ENOTDIR)
    XCTAssertEqual(
      errno(
        500,
        #"{"code":500,"message":"error checking if path exists '/a/b': stat /a/b: not a directory"}"#
      ),
      ENOTDIR)
  }

  func testProxyErrors() {
    XCTAssertEqual(
      errno(502, #"{"sandboxId":"abc","message":"The sandbox was not found","code":502}"#), EIO)
    XCTAssertEqual(errno(409, #"{"sandboxId":"abc","message":"transitioning","code":409}"#), EAGAIN)
    XCTAssertEqual(errno(429, #"{"message":"too many connections","code":429}"#), EAGAIN)
  }

  func testNonJSONBodiesGoByStatus() {
    XCTAssertEqual(
      errno(502, "<html><body>Bad Gateway: no such file or directory</body></html>"), EIO)
    XCTAssertEqual(errno(503, ""), EIO)
    XCTAssertEqual(errno(401, "unauthorized"), EACCES)
    XCTAssertEqual(errno(404, "404 page not found\n"), ENOENT)
    XCTAssertEqual(errno(507, "full"), ENOSPC)
    XCTAssertEqual(errno(500, "is a directory"), EIO)
  }

  func testMessagesNameOperationAndServerText() {
    let error = EnvdErrorMapping.remoteError(
      status: 404, body: Array(#"{"code":"not_found","message":"file not found"}"#.utf8),
      context: "stat /a")
    XCTAssertEqual(error.message, "stat /a: file not found [not_found]")
    let opaque = EnvdErrorMapping.remoteError(
      status: 502, body: Array("Bad Gateway\nmore".utf8), context: "stat /a")
    XCTAssertEqual(opaque.message, "stat /a: HTTP 502: Bad Gateway")
  }
}
