import Foundation
import TestSupport
import XCTest

@testable import AgentCore

/// A command's output ring: bounded, addressed by stream offset, and a reader asking for bytes
/// it no longer holds gets the earliest ones it has.
final class LangSmithOutputRingTests: XCTestCase {
  func testReadsByOffset() {
    var ring = OutputRing()
    ring.append(Data("hello ".utf8))
    ring.append(Data("world".utf8))
    XCTAssertEqual(ring.total, 11)
    let (offset, bytes) = ring.read(from: 6, limit: 100)
    XCTAssertEqual(offset, 6)
    XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "world")
    XCTAssertEqual(ring.read(from: 0, limit: 5).bytes, Array("hello".utf8))
    XCTAssertEqual(ring.read(from: 11, limit: 5).bytes, [])
    XCTAssertEqual(ring.read(from: 50, limit: 5).offset, 11)
  }

  func testOldBytesAreDroppedAndReadersSkipToTheEarliestKept() {
    var ring = OutputRing()
    let chunk = Data(repeating: 0x41, count: 1 << 20)
    for _ in 0..<8 { ring.append(chunk) }
    XCTAssertEqual(ring.total, 8 << 20)
    XCTAssertLessThanOrEqual(ring.bytes.count, OutputRing.capacity + OutputRing.capacity / 4)
    XCTAssertGreaterThanOrEqual(ring.bytes.count, OutputRing.capacity)
    let (offset, bytes) = ring.read(from: 0, limit: 10)
    XCTAssertEqual(offset, ring.base)
    XCTAssertGreaterThan(offset, 0)
    XCTAssertEqual(bytes.count, 10)
  }
}

/// The command routes' plain-HTTP edges: a GET without the upgrade, SSE's events and errors.
final class LangSmithCommandRoutesTests: LangSmithTestCase {
  func testExecuteWebSocketWithoutAnUpgradeIs400() throws {
    let reply = try client.request("/execute/ws")
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(errorType(reply), "InvalidRequest")
  }

  func testSSEStartStreamsBase64OutputWithOffsetsThenResumes() throws {
    let start = try post(
      "/execute/stream/start",
      ["command": "printf 'héllo'; printf oops >&2; exit 5", "command_id": "c1"])
    XCTAssertEqual(start.status, 200, start.text)
    XCTAssertEqual(start.headers["content-type"], "text/event-stream")
    let events = parse(start.text)
    XCTAssertEqual(events.first?.0, "started")
    XCTAssertEqual(events.first?.1["command_id"] as? String, "c1")
    let stdout = events.filter { $0.0 == "stdout" }.map { $0.1 }
    XCTAssertEqual(stdout.first?["offset"] as? Int, 0)
    let decoded = stdout.compactMap { Data(base64Encoded: $0["data"] as? String ?? "") }
      .reduce(Data(), +)
    XCTAssertEqual(String(decoding: decoded, as: UTF8.self), "héllo")
    XCTAssertTrue(
      events.contains {
        $0.0 == "stream_end" && $0.1["stream"] as? String == "stdout" && $0.1["offset"] as? Int == 6
      })
    XCTAssertEqual(events.last?.0, "exit")
    XCTAssertEqual(events.last?.1["exit_code"] as? Int, 5)

    let resumed = try post(
      "/execute/stream/resume", ["command_id": "c1", "stdout_offset": 3, "stderr_offset": 4])
    let again = parse(resumed.text)
    let rest = again.filter { $0.0 == "stdout" }.compactMap {
      Data(base64Encoded: $0.1["data"] as? String ?? "")
    }.reduce(Data(), +)
    XCTAssertEqual(String(decoding: rest, as: UTF8.self), "llo")
    XCTAssertFalse(again.contains { $0.0 == "stderr" })

    let unknown = try post("/execute/stream/resume", ["command_id": "nope"])
    XCTAssertEqual(unknown.status, 404)
    XCTAssertEqual(errorType(unknown), "CommandNotFound")
  }

  private func parse(_ text: String) -> [(String, [String: Any])] {
    text.components(separatedBy: "\n\n").compactMap { block in
      var name: String?
      var data = ""
      for line in block.split(separator: "\n") {
        if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
        if line.hasPrefix("data: ") { data += line.dropFirst(6) }
      }
      guard let name,
        let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
      else { return nil }
      return (name, object)
    }
  }
}
