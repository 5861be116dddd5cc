import CZlib
import Foundation
import TestSupport
import XCTest

@testable import EnvdBackend

/// The gzip upload body, pulled the way curl pulls it and inflated back with zlib.
final class GzipBodyTests: XCTestCase {
  private var local: TemporaryDirectory!

  override func setUpWithError() throws { local = try TemporaryDirectory(prefix: "envd-gzip") }
  override func tearDown() { local?.remove() }

  private func file(_ name: String, _ bytes: [UInt8]) throws -> Int32 {
    let path = local.path + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let descriptor = open(path, O_RDONLY)
    XCTAssertGreaterThanOrEqual(descriptor, 0)
    return descriptor
  }

  /// Reads the whole body in `chunk`-sized pulls, as curl's read callback would.
  private func drain(_ source: GzipFileBodySource, chunk: Int) throws -> [UInt8] {
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: chunk)
    while true {
      let count = try XCTUnwrap(
        buffer.withUnsafeMutableBytes { source.read(into: $0.baseAddress!, capacity: chunk) })
      if count == 0 { return output }
      output += buffer[0..<count]
    }
  }

  private func gunzip(_ compressed: [UInt8], expectedSize: Int) throws -> [UInt8] {
    var stream = z_stream()
    XCTAssertEqual(sandbox_inflate_init_auto(&stream), Z_OK)
    defer { inflateEnd(&stream) }
    var input = compressed
    var output = [UInt8](repeating: 0, count: expectedSize + 1)
    let result = input.withUnsafeMutableBufferPointer { input in
      output.withUnsafeMutableBufferPointer { output in
        stream.next_in = input.baseAddress
        stream.avail_in = UInt32(input.count)
        stream.next_out = output.baseAddress
        stream.avail_out = UInt32(output.count)
        return inflate(&stream, Z_FINISH)
      }
    }
    XCTAssertEqual(result, Z_STREAM_END)
    return Array(output[0..<Int(stream.total_out)])
  }

  func testRoundTripInSmallAndLargePulls() throws {
    let text = Array(
      String(repeating: "all work and no play makes jack a dull boy\n", count: 50_000).utf8)
    let descriptor = try file("text", text)
    defer { close(descriptor) }
    XCTAssertTrue(GzipFileBodySource.paysOff(descriptor: descriptor, size: Int64(text.count)))
    let source = try GzipFileBodySource(descriptor: descriptor)
    let small = try drain(source, chunk: 1000)
    XCTAssertLessThan(small.count, text.count / 10)
    XCTAssertEqual(try gunzip(small, expectedSize: text.count), text)
    // curl rewinds to resend on a connection that died: the same stream comes out again.
    XCTAssertTrue(source.rewind())
    let large = try drain(source, chunk: 512 << 10)
    XCTAssertEqual(large, small)
  }

  func testRandomDataDoesNotPayOff() throws {
    let random = try randomBytes(256 << 10)
    let descriptor = try file("random", random)
    defer { close(descriptor) }
    XCTAssertFalse(GzipFileBodySource.paysOff(descriptor: descriptor, size: Int64(random.count)))
    let small = try file("small", Array(repeating: 0, count: 1000))
    defer { close(small) }
    XCTAssertFalse(GzipFileBodySource.paysOff(descriptor: small, size: 1000))
  }
}
