import AgentCore
import NIOCore
import XCTest

/// The envelope parser against every way the bytes may be chunked on the wire.
final class StreamingEnvelopeTests: XCTestCase {
  private func stream(_ payloads: [(UInt8, String)]) -> [UInt8] {
    var bytes: [UInt8] = []
    for (flags, text) in payloads {
      let envelope = Envelope(flags: flags, payload: ByteBuffer(string: text))
      bytes += Array(buffer: envelope.encoded())
    }
    return bytes
  }

  func testEncodingLayout() {
    let bytes = Array(buffer: Envelope(flags: 2, payload: ByteBuffer(string: "{}")).encoded())
    XCTAssertEqual(bytes, [2, 0, 0, 0, 2, UInt8(ascii: "{"), UInt8(ascii: "}")])
  }

  func testEveryChunkSizeYieldsTheSameEnvelopes() throws {
    let payloads: [(UInt8, String)] = [
      (0, #"{"a":1}"#), (0, ""), (0, String(repeating: "x", count: 70_000)), (2, "{}"),
    ]
    let bytes = stream(payloads)
    for chunkSize in [1, 2, 3, 4, 5, 6, 7, 13, 4096, bytes.count] {
      var parser = EnvelopeParser()
      var got: [Envelope] = []
      var offset = 0
      while offset < bytes.count {
        let end = min(offset + chunkSize, bytes.count)
        parser.append(ByteBuffer(bytes: bytes[offset..<end]))
        while let envelope = try parser.next() { got.append(envelope) }
        offset = end
      }
      XCTAssertNil(parser.truncation, "chunk \(chunkSize)")
      XCTAssertEqual(got.map(\.flags), payloads.map(\.0), "chunk \(chunkSize)")
      XCTAssertEqual(
        got.map { String(buffer: $0.payload) }, payloads.map(\.1), "chunk \(chunkSize)")
      XCTAssertEqual(got.last?.isEndStream, true)
    }
  }

  func testTruncationIsReported() throws {
    var parser = EnvelopeParser()
    parser.append(ByteBuffer(bytes: [0, 0, 0]))
    XCTAssertNil(try parser.next())
    XCTAssertEqual(parser.truncation?.promised, nil)

    var short = EnvelopeParser()
    short.append(ByteBuffer(bytes: [0, 0, 0, 0, 9, 1, 2]))
    XCTAssertNil(try short.next())
    XCTAssertEqual(short.truncation?.promised, 9)
    XCTAssertEqual(short.truncation?.got, 2)
  }

  func testOversizedFrameIsRefusedWithoutBuffering() {
    var parser = EnvelopeParser(maxPayloadBytes: 10)
    parser.append(ByteBuffer(bytes: [0, 0, 0, 1, 0]))
    XCTAssertThrowsError(try parser.next())
  }
}
