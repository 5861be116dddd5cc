import Backend
import EnvdBackend
import Foundation
import TestSupport
import XCTest

/// Sequential 1 MiB `read` calls against `curl -o /dev/null` of the same file from the same agent.
/// A measurement, not a check: runs only with ENVD_BENCH_MIB=<size> (e.g. 256).
final class ReadThroughputTests: XCTestCase {
  func testSequentialReadThroughput() async throws {
    guard let sizeText = ProcessInfo.processInfo.environment["ENVD_BENCH_MIB"],
      let mebibytes = Int(sizeText)
    else { throw XCTSkip("set ENVD_BENCH_MIB to measure") }
    let fixture = try AgentFixture()
    defer { fixture.close() }
    let size = mebibytes << 20
    let made = try runCommand([
      "dd", "if=/dev/urandom", "of=\(fixture.path("/bench"))", "bs=1M", "count=\(mebibytes)",
      "status=none",
    ])
    XCTAssertEqual(made.status, 0, made.error)
    let backend = try fixture.backend()
    _ = try await backend.read("/bench", offset: 0, length: 1, expectedSize: UInt64(size))  // warm up

    for round in 1...2 {
      let curlSeconds = try await timed {
        let result = try runCommand([
          "curl", "-sS", "-o", "/dev/null", "\(fixture.agent.url)/files?path=/bench",
        ])
        XCTAssertEqual(result.status, 0, result.error)
      }
      let chunk = 1 << 20
      var total = 0
      let readSeconds = try await timed {
        var offset = 0
        while offset < size {
          let bytes = try await backend.read(
            "/bench", offset: UInt64(offset), length: chunk, expectedSize: UInt64(size))
          total += bytes.count
          offset += chunk
        }
      }
      XCTAssertEqual(total, size)
      print(
        String(
          format:
            "round %d: %d MiB: curl -o /dev/null %.0f MiB/s, EnvdBackend.read 1 MiB chunks %.0f MiB/s",
          round, mebibytes, Double(mebibytes) / curlSeconds, Double(mebibytes) / readSeconds))
    }
  }
}
