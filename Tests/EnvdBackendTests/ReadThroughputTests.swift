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
    let backend = try await fixture.backend()
    _ = try await backend.read("/bench", offset: 0, length: 1, expectedSize: UInt64(size))  // warm up

    // The same 1 MiB ranged GETs from one curl process over one kept-alive connection.
    let chunk = 1 << 20
    let scratch = try TemporaryDirectory(prefix: "envd-bench")
    defer { scratch.remove() }
    let config = scratch.path + "/ranges.cfg"
    try (0..<(size / chunk)).map { index in
      "url = \"\(fixture.agent.url)/files?path=/bench\"\nrange = \(index * chunk)-\((index + 1) * chunk - 1)\n"
        + "output = /dev/null\n"
    }.joined(separator: "next\n").write(toFile: config, atomically: false, encoding: .utf8)

    for round in 1...3 {
      let curlSeconds = try await timed {
        let result = try runCommand([
          "curl", "-sS", "-o", "/dev/null", "\(fixture.agent.url)/files?path=/bench",
        ])
        XCTAssertEqual(result.status, 0, result.error)
      }
      let curlRangesSeconds = try await timed {
        let result = try runCommand(["curl", "-sS", "-K", config])
        XCTAssertEqual(result.status, 0, result.error)
      }
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
      let rate = { (seconds: Double) in Double(mebibytes) / seconds }
      print(
        "round \(round): \(mebibytes) MiB, MiB/s: curl whole file \(Int(rate(curlSeconds))), "
          + "curl 1 MiB ranges \(Int(rate(curlRangesSeconds))), "
          + "EnvdBackend.read 1 MiB chunks \(Int(rate(readSeconds)))")
    }
  }
}

/// ListDir of a big directory: the backend's decode against curl fetching the same JSON.
/// Runs only with ENVD_BENCH_FILES=<count> (e.g. 10000).
final class ListDirectoryTimingTests: XCTestCase {
  func testListDirectoryTiming() async throws {
    guard let countText = ProcessInfo.processInfo.environment["ENVD_BENCH_FILES"],
      let count = Int(countText)
    else { throw XCTSkip("set ENVD_BENCH_FILES to measure") }
    let fixture = try AgentFixture()
    defer { fixture.close() }
    try fixture.makeDirectory("/many")
    for index in 0..<count {
      FileManager.default.createFile(atPath: fixture.path("/many/file-\(index)"), contents: nil)
    }
    let backend = try await fixture.backend()
    for round in 1...3 {
      let curlSeconds = try await timed {
        let result = try runCommand([
          "curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/json", "-d",
          #"{"path":"/many","depth":1}"#, "\(fixture.agent.url)/filesystem.Filesystem/ListDir",
        ])
        XCTAssertEqual(result.status, 0, result.error)
      }
      var listed = 0
      let backendSeconds = try await timed {
        listed = try await backend.listDirectory("/many").count
      }
      XCTAssertEqual(listed, count)
      print(
        "round \(round): ListDir of \(count) entries: curl \(Int(curlSeconds * 1000)) ms, "
          + "EnvdBackend.listDirectory \(Int(backendSeconds * 1000)) ms")
    }
  }
}
