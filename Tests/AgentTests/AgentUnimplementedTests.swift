import Foundation
import TestSupport
import XCTest

/// envd procedures this agent lacks answer as connect-go's generated `Unimplemented…Handler`
/// would: the unary error for unary calls, an end-stream error under HTTP 200 for streams.
/// (Update, Connect and StreamInput are the ones still missing on this branch.)
final class AgentUnimplementedTests: AgentTestCase {
  func testUnaryIsConnectUnimplemented() throws {
    let reply = try ConnectWire.unary(agent, "/process.Process/Update", #"{"process":{"pid":1}}"#)
    XCTAssertEqual(reply.status, 501)
    XCTAssertEqual(reply.json["code"] as? String, "unimplemented")
    XCTAssertEqual(reply.json["message"] as? String, "process.Process.Update is not implemented")
    let streamingCodec = try ConnectWire.stream(agent, "/process.Process/Update", "{}")
    XCTAssertEqual(streamingCodec.status, 415)
  }

  func testServerStreamEndsWithUnimplementedAfterReadingTheRequest() throws {
    let reply = try ConnectWire.stream(agent, "/process.Process/Connect", #"{"process":{"pid":1}}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertTrue(
      reply.headers.lowercased().contains("content-type: application/connect+json"), reply.headers)
    XCTAssertEqual(reply.frames.count, 1)
    XCTAssertEqual(reply.frames.first?.isEndStream, true)
    let error = reply.frames.first?.json["error"] as? [String: Any]
    XCTAssertEqual(error?["code"] as? String, "unimplemented")
    XCTAssertEqual(error?["message"] as? String, "process.Process.Connect is not implemented")
    // connect-go reads the one request message first: an empty body fails on that.
    let empty = try ConnectWire.post(agent, "/process.Process/Connect", body: Data())
    let emptyError = empty.frames.first?.json["error"] as? [String: Any]
    XCTAssertEqual(emptyError?["message"] as? String, "unary request has zero messages")
    let unaryCodec = try ConnectWire.unary(agent, "/process.Process/Connect", "{}")
    XCTAssertEqual(unaryCodec.status, 415)
  }

  func testClientStreamEndsWithUnimplemented() throws {
    let input = ConnectWire.envelope(#"{"start":{"process":{"pid":1}}}"#)
    let reply = try ConnectWire.post(agent, "/process.Process/StreamInput", body: input)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.frames.count, 1)
    XCTAssertEqual(reply.frames.first?.isEndStream, true)
    let error = reply.frames.first?.json["error"] as? [String: Any]
    XCTAssertEqual(error?["code"] as? String, "unimplemented")
    XCTAssertEqual(error?["message"] as? String, "process.Process.StreamInput is not implemented")
    // The agent keeps serving afterwards.
    XCTAssertEqual(try client.request("/health").status, 204)
  }
}
