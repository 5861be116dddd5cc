import Foundation
import TestSupport
import XCTest

/// `GET /files`: ServeContent ranges and conditionals, gzip negotiation, envd errors.
final class AgentDownloadTests: AgentTestCase {
  func testWholeFileWithHeaders() throws {
    let data = randomData(3 * 1024 * 1024 + 17)
    try put("dir/blob.bin", data)
    let reply = try client.download("/dir/blob.bin")
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.body, data)
    XCTAssertEqual(reply.headers["content-length"], String(data.count))
    XCTAssertEqual(reply.headers["accept-ranges"], "bytes")
    XCTAssertEqual(reply.headers["vary"], "Accept-Encoding")
    XCTAssertEqual(reply.headers["content-type"], "application/octet-stream")
    XCTAssertEqual(reply.headers["content-disposition"], "inline; filename=\"blob.bin\"")
    XCTAssertNotNil(reply.headers["last-modified"])
  }

  func testContentTypeFromExtension() throws {
    try put("page.html", Data("<p>".utf8))
    try put("data.json", Data("{}".utf8))
    XCTAssertEqual(
      try client.download("/page.html").headers["content-type"], "text/html; charset=utf-8")
    XCTAssertEqual(try client.download("/data.json").headers["content-type"], "application/json")
  }

  func testMissingFileIs404JSON() throws {
    let reply = try client.download("/missing.txt")
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(reply.headers["content-type"], "application/json; charset=utf-8")
    XCTAssertEqual(
      reply.text, #"{"code":404,"message":"path '/missing.txt' does not exist"}"# + "\n")
  }

  func testQueryIsDecodedAsGoDoes() throws {
    try put("a b", Data("space".utf8))
    try put("a+b", Data("plus".utf8))
    try put("first", Data("first".utf8))
    XCTAssertEqual(try client.request("/files?path=/a+b").text, "space")
    XCTAssertEqual(try client.request("/files?path=/a%20b").text, "space")
    XCTAssertEqual(try client.request("/files?path=/a%2Bb").text, "plus")
    XCTAssertEqual(try client.request("/files?path=/first&path=/a+b").text, "first")
  }

  func testDispositionEscapesQuotesAndBackslashes() throws {
    try put("say \"hi\"\\now.txt", Data("x".utf8))
    let reply = try client.request("/files?path=/say%20%22hi%22%5Cnow.txt")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(
      reply.headers["content-disposition"], #"inline; filename="say \"hi\"\\now.txt""#)
  }

  /// Small ranges are served on the event loop: a FIFO must neither block the open there nor
  /// be read, and the agent must go on serving.
  func testSmallRangeOfAFifoAnswersAtOnce() throws {
    XCTAssertEqual(mkfifo(hostPath("pipe"), 0o644), 0)
    try put("after.txt", Data("still serving".utf8))
    let reply = try client.download("/pipe", headers: ["Range: bytes=0-99"])
    XCTAssertEqual(reply.status, 416, reply.text)
    XCTAssertEqual(try client.download("/after.txt").text, "still serving")
  }

  func testDirectoryIs400() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("d"), withIntermediateDirectories: true)
    let reply = try client.download("/d")
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(reply.json["message"] as? String, "path '/d' is a directory")
  }

  func testNotADirectoryComponentIs500() throws {
    try put("f", Data("x".utf8))
    let reply = try client.download("/f/x")
    XCTAssertEqual(reply.status, 500)
    let message = reply.json["message"] as? String ?? ""
    XCTAssertTrue(message.hasPrefix("error checking if path exists '/f/x': "), reply.text)
    XCTAssertTrue(message.hasSuffix("not a directory"), reply.text)
  }

  func testRanges() throws {
    let data = Data("0123456789".utf8)
    try put("r.txt", data)
    let closed = try client.download("/r.txt", headers: ["Range: bytes=2-4"])
    XCTAssertEqual(closed.status, 206)
    XCTAssertEqual(closed.text, "234")
    XCTAssertEqual(closed.headers["content-range"], "bytes 2-4/10")
    XCTAssertEqual(closed.headers["content-length"], "3")
    let open = try client.download("/r.txt", headers: ["Range: bytes=7-"])
    XCTAssertEqual(open.text, "789")
    XCTAssertEqual(open.headers["content-range"], "bytes 7-9/10")
    let suffix = try client.download("/r.txt", headers: ["Range: bytes=-4"])
    XCTAssertEqual(suffix.status, 206)
    XCTAssertEqual(suffix.text, "6789")
    XCTAssertEqual(suffix.headers["content-range"], "bytes 6-9/10")
    let clamped = try client.download("/r.txt", headers: ["Range: bytes=8-100"])
    XCTAssertEqual(clamped.text, "89")
    let multi = try client.download("/r.txt", headers: ["Range: bytes=0-1,4-5"])
    XCTAssertEqual(multi.status, 200)
    XCTAssertEqual(multi.body, data)
  }

  func testRangeAtOrPastEOFIs416() throws {
    try put("r.txt", Data("0123456789".utf8))
    for range in ["bytes=10-", "bytes=10-20", "bytes=50-60"] {
      let reply = try client.download("/r.txt", headers: ["Range: \(range)"])
      XCTAssertEqual(reply.status, 416, range)
      XCTAssertEqual(reply.headers["content-range"], "bytes */10", range)
    }
    XCTAssertEqual(try client.download("/r.txt", headers: ["Range: pages=1-2"]).status, 416)
  }

  func testAnyRangeOnEmptyFileIs416() throws {
    try put("empty", Data())
    for range in ["bytes=0-0", "bytes=0-", "bytes=-1"] {
      let reply = try client.download("/empty", headers: ["Range: \(range)"])
      XCTAssertEqual(reply.status, 416, range)
      XCTAssertEqual(reply.headers["content-range"], "bytes */0", range)
    }
    let whole = try client.download("/empty")
    XCTAssertEqual(whole.status, 200)
    XCTAssertEqual(whole.headers["content-length"], "0")
  }

  func testConditionalRequests() throws {
    let path = try put("c.txt", Data("abc".utf8))
    var times = [
      timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_000, tv_nsec: 0),
    ]
    XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
    let first = try client.download("/c.txt")
    XCTAssertEqual(first.headers["last-modified"], "Tue, 14 Nov 2023 22:13:20 GMT")
    let notModified = try client.download(
      "/c.txt", headers: ["If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT"])
    XCTAssertEqual(notModified.status, 304)
    XCTAssertTrue(notModified.body.isEmpty)
    let modified = try client.download(
      "/c.txt", headers: ["If-Modified-Since: Tue, 14 Nov 2023 22:13:19 GMT"])
    XCTAssertEqual(modified.status, 200)
    let failed = try client.download(
      "/c.txt", headers: ["If-Unmodified-Since: Mon, 13 Nov 2023 00:00:00 GMT"])
    XCTAssertEqual(failed.status, 412)
    let passes = try client.download(
      "/c.txt", headers: ["If-Unmodified-Since: Tue, 14 Nov 2023 22:13:20 GMT"])
    XCTAssertEqual(passes.status, 200)
  }

  func testGzipDownloadStreamsCompressed() throws {
    let text = Data(String(repeating: "compressible line of text\n", count: 100_000).utf8)
    try put("t.txt", text)
    let raw = try client.download("/t.txt", headers: ["Accept-Encoding: gzip"])
    XCTAssertEqual(raw.status, 200)
    XCTAssertEqual(raw.headers["content-encoding"], "gzip")
    XCTAssertNil(raw.headers["content-length"])
    XCTAssertNil(raw.headers["last-modified"])
    XCTAssertEqual(raw.headers["content-type"], "text/plain; charset=utf-8")
    XCTAssertLessThan(raw.body.count, text.count / 10)
    let decoded = try client.request(
      "/files?path=/t.txt", extra: ["--compressed"])
    XCTAssertEqual(decoded.body, text)
  }

  func testGzipIsNotChosenWhenIdentityIsPreferred() throws {
    try put("t.txt", Data("x".utf8))
    let reply = try client.download("/t.txt", headers: ["Accept-Encoding: gzip;q=0.5, identity"])
    XCTAssertNil(reply.headers["content-encoding"])
    let star = try client.download("/t.txt", headers: ["Accept-Encoding: *;q=0, gzip"])
    XCTAssertEqual(star.headers["content-encoding"], "gzip")
  }

  func testRangeForcesIdentity() throws {
    try put("r.txt", Data("0123456789".utf8))
    let reply = try client.download(
      "/r.txt", headers: ["Accept-Encoding: gzip", "Range: bytes=0-1"])
    XCTAssertEqual(reply.status, 206)
    XCTAssertNil(reply.headers["content-encoding"])
    XCTAssertEqual(reply.text, "01")
  }

  func testNoAcceptableEncodingIs406() throws {
    try put("r.txt", Data("x".utf8))
    let reply = try client.download("/r.txt", headers: ["Accept-Encoding: br, identity;q=0"])
    XCTAssertEqual(reply.status, 406)
    XCTAssertEqual(reply.json["code"] as? Int, 406)
    XCTAssertTrue((reply.json["message"] as? String ?? "").contains("no acceptable encoding found"))
  }

  func testConcurrentRangeReads() throws {
    let data = randomData(1 << 20)
    try put("big", data)
    let chunk = 64 * 1024
    let client = self.client
    let results = UnsafeSendableBox([Data?](repeating: nil, count: 16))
    DispatchQueue.concurrentPerform(iterations: 16) { index in
      let start = index * chunk
      let reply = try? client.download(
        "/big", headers: ["Range: bytes=\(start)-\(start + chunk - 1)"])
      results.lock.withLock { results.value[index] = reply?.body }
    }
    for index in 0..<16 {
      XCTAssertEqual(
        results.value[index], data.subdata(in: (index * chunk)..<((index + 1) * chunk)))
    }
  }
}

final class UnsafeSendableBox<Value>: @unchecked Sendable {
  let lock = NSLock()
  var value: Value
  init(_ value: Value) { self.value = value }
}
