import Foundation
import TestSupport
import XCTest

/// /health, /metrics, /envs and what chi / connect-go answer for routes that do not exist.
final class AgentRoutesTests: AgentTestCase {
  func testHealthIs204WithoutBody() throws {
    let reply = try client.request("/health")
    XCTAssertEqual(reply.status, 204)
    XCTAssertTrue(reply.body.isEmpty)
  }

  func testUnknownRouteIsChi404() throws {
    let reply = try client.request("/nope")
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(reply.text, "404 page not found\n")
    XCTAssertEqual(reply.headers["content-type"], "text/plain; charset=utf-8")
  }

  func testWrongMethodOnKnownRouteIs405() throws {
    XCTAssertEqual(try client.request("/health", method: "DELETE").status, 405)
    XCTAssertEqual(try client.request("/filesystem.Filesystem/Stat").status, 405)
  }

  func testUnknownMethodOnKnownServiceIs404() throws {
    let reply = try client.rpc("Frobnicate", "{}")
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(reply.text, "404 page not found\n")
  }

  func testMetricsReportTheRootsDisk() throws {
    let reply = try client.request("/metrics")
    XCTAssertEqual(reply.status, 200)
    let metrics = reply.json
    for key in [
      "ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "mem_cache", "mem_total_mib",
      "mem_used_mib", "disk_used", "disk_total",
    ] {
      XCTAssertNotNil(metrics[key], key)
    }
    var expected = statvfs()
    XCTAssertEqual(statvfs(root.path, &expected), 0)
    let total = (metrics["disk_total"] as? NSNumber)?.uint64Value ?? 0
    XCTAssertEqual(total, UInt64(expected.f_blocks) * UInt64(expected.f_frsize))
    XCTAssertGreaterThan((metrics["cpu_count"] as? Int) ?? 0, 0)
    XCTAssertGreaterThan((metrics["mem_total"] as? NSNumber)?.uint64Value ?? 0, 0)
  }

  func testEnvsIsAJSONMap() throws {
    let reply = try client.request("/envs")
    XCTAssertEqual(reply.status, 200)
    XCTAssertNotNil(reply.json["PATH"])
  }

  func testSIGTERMWithSlowDownloadInFlightExitsZeroAfterGrace() throws {
    try put("big.bin", randomData(32 * 1024 * 1024))
    let curl = try ChildProcess(
      executable: "/usr/bin/curl",
      arguments: [
        "-s", "--limit-rate", "1M", "-o", "/dev/null", agent.url + "/files?path=/big.bin",
      ])
    defer { curl.stop(grace: 1) }
    Thread.sleep(forTimeInterval: 0.5)
    let start = Date()
    kill(agent.child.process.processIdentifier, SIGTERM)
    XCTAssertEqual(agent.child.waitForExit(timeout: 15), 0)
    XCTAssertLessThan(Date().timeIntervalSince(start), 10)
  }

  func testSIGTERMExitsZero() throws {
    kill(agent.child.process.processIdentifier, SIGTERM)
    XCTAssertEqual(agent.child.waitForExit(timeout: 10), 0)
  }
}
