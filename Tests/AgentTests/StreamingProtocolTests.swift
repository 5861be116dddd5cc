import Foundation
import TestSupport
import XCTest

/// Connect streaming framing errors, answered as connect-go does: HTTP 200 with an end-stream
/// error, except a wrong Content-Type (415).
final class StreamingProtocolTests: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-connect")
    agent = try RunningAgent(root: root.path)
  }

  override func tearDownWithError() throws {
    agent?.stop()
    root?.remove()
  }

  private func endStreamError(_ body: Data) throws -> (code: String?, message: String?) {
    let reply = try ConnectWire.post(agent, "/process.Process/Start", body: body)
    XCTAssertEqual(reply.status, 200)
    let frames = reply.frames
    XCTAssertEqual(frames.count, 1, "only the end-stream envelope")
    XCTAssertEqual(frames.first?.isEndStream, true)
    return (frames.first?.errorCode, frames.first?.error?["message"] as? String)
  }

  func testShortPrefixIsInvalidArgument() throws {
    let error = try endStreamError(Data([0, 0, 0]))
    XCTAssertEqual(error.code, "invalid_argument")
    XCTAssertEqual(error.message, "protocol error: incomplete envelope: unexpected EOF")
  }

  func testPromisedLengthNotDeliveredIsInvalidArgument() throws {
    var body = ConnectWire.envelope(#"{"process":{"cmd":"true"}}"#)
    body[4] = 200
    let error = try endStreamError(body)
    XCTAssertEqual(error.code, "invalid_argument")
    XCTAssertTrue(error.message?.hasPrefix("protocol error: promised 200 bytes") == true)
  }

  func testInvalidJSONIsInvalidArgument() throws {
    let error = try endStreamError(ConnectWire.envelope("{not json"))
    XCTAssertEqual(error.code, "invalid_argument")
    XCTAssertTrue(error.message?.hasPrefix("unmarshal message:") == true)
  }

  func testCompressedFlagWithoutCompressionIsInvalidArgument() throws {
    let error = try endStreamError(ConnectWire.envelope(#"{"process":{"cmd":"true"}}"#, flags: 1))
    XCTAssertEqual(error.code, "invalid_argument")
  }

  func testEmptyBodyAndTwoMessagesAreUnimplemented() throws {
    XCTAssertEqual(try endStreamError(Data()).code, "unimplemented")
    let two = ConnectWire.envelope(#"{"process":{"cmd":"true"}}"#) + ConnectWire.envelope("{}")
    XCTAssertEqual(try endStreamError(two).code, "unimplemented")
  }

  func testWrongContentTypeIs415() throws {
    let reply = try ConnectWire.post(
      agent, "/process.Process/Start", body: Data(#"{"process":{"cmd":"true"}}"#.utf8),
      contentType: "application/json")
    XCTAssertEqual(reply.status, 415)
  }

  func testBadTimeoutHeaderIsInvalidArgument() throws {
    let reply = try ConnectWire.stream(
      agent, "/process.Process/Start", #"{"process":{"cmd":"true"}}"#,
      headers: ["Connect-Timeout-Ms: soon"])
    XCTAssertEqual(reply.frames.endStream?.errorCode, "invalid_argument")
  }

  func testUnknownMethodIs404() throws {
    let reply = try ConnectWire.stream(agent, "/process.Process/NoSuchMethod", "{}")
    XCTAssertEqual(reply.status, 404)
  }

  func testUnaryMalformedJSONIsInvalidArgument() throws {
    let reply = try ConnectWire.unary(agent, "/process.Process/SendSignal", "{oops")
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(reply.json["code"] as? String, "invalid_argument")
  }
}
