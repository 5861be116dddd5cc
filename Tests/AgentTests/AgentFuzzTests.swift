import Foundation
import Glibc
import TestSupport
import XCTest

/// Bounded fuzzing of every parser that takes network input: a fixed seed, a fixed count of
/// generated inputs and a time budget per test, loopback only. Every input must get an answer
/// below 500 (a 4xx when it is malformed), the agent keeps serving (a health request after each
/// batch), and nothing outside `--root` changes (a sentinel folder beside it).
class AgentFuzzTestCase: XCTestCase {
  var parent: TemporaryDirectory!
  var agent: RunningAgent!
  var sentinelBefore: [String: String] = [:]
  var agentArguments: [String] { [] }
  /// Wall-clock budget per test: inputs past it are skipped (and counted as such).
  let budget: TimeInterval = 8
  var started = Date()

  var rootPath: String { parent.path + "/root" }

  override func setUpWithError() throws {
    parent = try TemporaryDirectory(prefix: "agent-fuzz")
    let manager = FileManager.default
    try manager.createDirectory(atPath: rootPath + "/home/user", withIntermediateDirectories: true)
    try manager.createDirectory(
      atPath: rootPath + "/vercel/sandbox", withIntermediateDirectories: true)
    try manager.createDirectory(atPath: rootPath + "/dir", withIntermediateDirectories: true)
    try Data("inside".utf8).write(to: URL(fileURLWithPath: rootPath + "/dir/file.txt"))
    try manager.createDirectory(
      atPath: parent.path + "/sentinel/folder", withIntermediateDirectories: true)
    try Data("sentinel".utf8).write(to: URL(fileURLWithPath: parent.path + "/sentinel/secret.txt"))
    sentinelBefore = try snapshotOutsideRoot()
    agent = try RunningAgent(root: rootPath, arguments: agentArguments)
    started = Date()
  }

  override func tearDownWithError() throws {
    agent?.stop()
    let after = try snapshotOutsideRoot()
    parent?.remove()
    XCTAssertEqual(after, sentinelBefore, "something outside --root changed")
  }

  /// Every entry beside the root (the sentinel and anything made next to it): type, size, mode,
  /// mtime.
  func snapshotOutsideRoot() throws -> [String: String] {
    var result: [String: String] = [:]
    func walk(_ path: String, _ relative: String) {
      var info = stat()
      guard lstat(path, &info) == 0 else { return }
      result[relative] =
        "\(info.st_mode) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
      guard info.st_mode & S_IFMT == S_IFDIR else { return }
      for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
        if relative.isEmpty && name == "root" { continue }
        walk(path + "/" + name, relative + "/" + name)
      }
    }
    walk(parent.path, "")
    // The parent's own times change when the root's contents do not; its entries are listed.
    result[""] = nil
    return result
  }

  var withinBudget: Bool { Date().timeIntervalSince(started) < budget }

  /// Runs `inputs` through `send`, checking each answer, then a health request.
  func run<Input>(
    _ label: String, _ inputs: [Input], malformed: (Input) -> Bool = { _ in true },
    _ send: (Input) throws -> RawResponse?
  ) {
    var skipped = 0
    for input in inputs {
      guard withinBudget else {
        skipped += 1
        continue
      }
      do {
        guard let reply = try send(input) else { continue }
        XCTAssertLessThan(reply.status, 500, "\(label) \(input): \(reply.text)")
        if malformed(input) {
          XCTAssertGreaterThanOrEqual(reply.status, 400, "\(label) \(input): \(reply.text)")
        }
      } catch {
        XCTFail("\(label) \(input): \(error)")
      }
    }
    if skipped > 0 { print("\(label): \(skipped) of \(inputs.count) inputs past the time budget") }
    assertServing(label)
  }

  func assertServing(_ label: String, path: String = "/health") {
    XCTAssertTrue(agent.child.isRunning, "\(label): the agent exited: \(agent.child.standardError)")
    let reply = try? agent.raw("GET", path)
    XCTAssertNotNil(reply, "\(label): no answer after the batch")
    if let reply { XCTAssertLessThan(reply.status, 500, "\(label): \(reply.text)") }
  }

  static func percentEncoded(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
      let unreserved =
        (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte)
        || (0x61...0x7a).contains(byte) || [0x2d, 0x2e, 0x5f, 0x7e, 0x2f].contains(byte)
      return unreserved ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
    }.joined()
  }

  /// `{"path":<bytes>…}`, with `extra` members after it.
  static func pathJSON(_ bytes: [UInt8], key: String = "path", extra: String = "") -> [UInt8] {
    let open: [UInt8] = Array("{\"\(key)\":".utf8)
    let close: [UInt8] = Array((extra + "}").utf8)
    return open + jsonString(bytes) + close
  }

  /// Refused in a JSON body: a path that must be, or bytes that make the JSON invalid.
  static func refusedInJSON(_ path: FuzzPath) -> Bool {
    path.mustBeRefused || String(validating: path.bytes, as: UTF8.self) == nil
  }

  static func refusedByVendorsInJSON(_ path: FuzzPath) -> Bool {
    path.refusedByVendors || String(validating: path.bytes, as: UTF8.self) == nil
  }

  /// JSON string contents for `bytes`: escapes where JSON needs them, other bytes raw (so
  /// non-UTF-8 names make invalid JSON on purpose).
  static func jsonString(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for byte in bytes {
      switch byte {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
      case 0..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
      default: out.append(byte)
      }
    }
    return out + [UInt8(ascii: "\"")]
  }
}

/// A path as raw bytes, with why it must be refused (nil when it may be fine).
struct FuzzPath: CustomStringConvertible {
  var bytes: [UInt8]
  var mustBeRefused: Bool
  /// Refused by envd's `~user` rule only; the vendor protocols take `~` as a name.
  var envdOnly = false

  var refusedByVendors: Bool { mustBeRefused && !envdOnly }

  var description: String {
    let text = String(decoding: bytes.prefix(80), as: UTF8.self)
    return
      "path '\(text.escapingControlCharactersForTests)'\(bytes.count > 80 ? "… (\(bytes.count) bytes)" : "")"
  }

  /// Seeded paths mixing climbs, NULs, encoded dots, overlong and non-UTF-8 names.
  static func generate(count: Int, seed: UInt64) -> [FuzzPath] {
    var random = SeededGenerator(seed: seed)
    let fixed: [(String, Bool)] = [
      ("/../sentinel/secret.txt", true), ("~/../../../../sentinel", true),
      ("../../../../../sentinel/x", true), ("/dir/../../sentinel", true), ("/..\u{0}/x", true),
      ("/dir\u{0}/x", true), ("/%2e%2e/sentinel", false), ("/dir/%2E%2E/x", false),
      ("/dir/file.txt", false), ("", false), ("~", false), ("~root/x", true),
      ("/" + String(repeating: "n", count: 300), false),
      ("/" + String(repeating: "d/", count: 2100), true),
    ]
    var paths = fixed.map {
      FuzzPath(bytes: Array($0.0.utf8), mustBeRefused: $0.1, envdOnly: $0.0.hasPrefix("~root"))
    }
    let pieces: [[UInt8]] = [
      Array("..".utf8), Array(".".utf8), Array("%2e%2e".utf8), Array("dir".utf8),
      Array("file.txt".utf8), Array("sentinel".utf8), [0], Array("a\u{0}b".utf8), [0xff, 0xfe],
      [0xc0, 0xae], [0xe2, 0x80, 0xae], Array("\n".utf8), Array("\\".utf8), Array("~".utf8),
      Array(String(repeating: "x", count: 256).utf8), Array("ü".utf8), [],
    ]
    while paths.count < count {
      var bytes: [UInt8] = Bool.random(using: &random) ? [UInt8(ascii: "/")] : []
      var depth = 0
      var climbed = false
      var hasNUL = false
      for index in 0..<Int.random(in: 1...6, using: &random) {
        if index > 0 { bytes.append(UInt8(ascii: "/")) }
        let piece = pieces.randomElement(using: &random)!
        bytes += piece
        if piece == Array("..".utf8) {
          depth -= 1
          if depth < 0 { climbed = true }
        } else if piece != Array(".".utf8) && !piece.isEmpty {
          depth += 1
        }
        if piece.contains(0) { hasNUL = true }
      }
      // Relative paths start at the home (two levels down); only absolute climbs are sure.
      let absolute = bytes.first == UInt8(ascii: "/")
      paths.append(FuzzPath(bytes: bytes, mustBeRefused: hasNUL || (absolute && climbed)))
    }
    return paths
  }
}

extension String {
  var escapingControlCharactersForTests: String {
    unicodeScalars.map { $0.value < 0x20 ? "\\u{\(String($0.value, radix: 16))}" : String($0) }
      .joined()
  }
}

final class AgentFuzzTests: AgentFuzzTestCase {
  let json = ["Content-Type: application/json", "Connect-Protocol-Version: 1"]

  func testPathsOnFilesAndFilesystemRPCs() throws {
    let paths = FuzzPath.generate(count: 120, seed: 18)
    run("GET /files", paths, malformed: \.mustBeRefused) {
      try agent.raw("GET", "/files?path=" + Self.percentEncoded($0.bytes))
    }
    run("POST /files", paths, malformed: \.mustBeRefused) {
      try agent.raw(
        "POST", "/files?path=" + Self.percentEncoded($0.bytes),
        headers: ["Content-Type: application/octet-stream"], body: Array("fuzz".utf8))
    }
    for method in ["Stat", "ListDir", "MakeDir", "Remove"] {
      run(method, paths, malformed: Self.refusedInJSON) {
        try agent.raw(
          "POST", "/filesystem.Filesystem/\(method)", headers: json,
          body: Self.pathJSON($0.bytes))
      }
    }
    run("Move", paths, malformed: Self.refusedInJSON) {
      _ = try? Data("m".utf8).write(to: URL(fileURLWithPath: rootPath + "/dir/move-me"))
      return try agent.raw(
        "POST", "/filesystem.Filesystem/Move", headers: json,
        body: Self.pathJSON($0.bytes, key: "destination", extra: ",\"source\":\"/dir/move-me\""))
    }
  }

  func testMultipartUploads() throws {
    var random = SeededGenerator(seed: 1818)
    let paths = FuzzPath.generate(count: 60, seed: 7)
    var bodies: [(boundary: String, body: [UInt8], refuse: Bool)] = paths.map { path in
      let boundary = "fz\(UInt32.random(in: 0...UInt32.max, using: &random))"
      let body =
        Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".utf8)
        + path.bytes + Array("\"\r\n\r\ndata\r\n--\(boundary)--\r\n".utf8)
      // A part header that is not UTF-8 is not read as one: the part is skipped, nothing written.
      let readable = String(validating: path.bytes, as: UTF8.self) != nil
      return (boundary, body, path.mustBeRefused && readable)
    }
    let broken: [(String, String)] = [
      ("b", "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nno end"),
      ("b", "--b\r\n\r\n--b--\r\n"), ("b", "garbage"), ("", "--\r\n"),
      ("b", "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--b--\r\n"),
      ("b", "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/a\"\r\n"),
      (
        "b",
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/dup\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/dup\"\r\n\r\ny\r\n--b--\r\n"
      ),
    ]
    bodies += broken.map { ($0.0, Array($0.1.utf8), true) }
    run("multipart", bodies, malformed: \.refuse) { input in
      try agent.raw(
        "POST", "/files",
        headers: ["Content-Type: multipart/form-data; boundary=\(input.boundary)"], body: input.body
      )
    }
  }

  func testBrokenFramingOnRawSockets() throws {
    let head =
      "POST /filesystem.Filesystem/Stat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\n"
    let upload =
      "POST /files?path=/dir/u HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
    let body = "{\"path\":\"/\"}"
    var requests: [String] = []
    for start in [head, upload] {
      requests += [
        start + "Content-Length: -1\r\n\r\n" + body,
        start + "Content-Length: abc\r\n\r\n" + body,
        start + "Content-Length: 99999999999999999999999\r\n\r\n" + body,
        start + "Content-Length: 12\r\nContent-Length: 13\r\n\r\n" + body,
        start + "Content-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n" + body
          + "\r\n0\r\n\r\n",
        start + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n",
        start + "Transfer-Encoding: chunked\r\n\r\n-1\r\n" + body + "\r\n0\r\n\r\n",
        start + "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffffff\r\n" + body
          + "\r\n0\r\n\r\n",
        start + "Transfer-Encoding: chunked\r\n\r\nc" + body + "0\r\n\r\n",
        start + "Transfer-Encoding: chunked\r\n\r\n4\r\n" + body + "\r\n0\r\n\r\n",
        start + "Transfer-Encoding: gzip, chunked\r\n\r\nc\r\n" + body + "\r\n0\r\n\r\n",
        start + "Transfer-Encoding: identity\r\n\r\n" + body,
        start + "Content-Length: 12\r\nX-Bad header\r\n\r\n" + body,
        start + "Content-Length: 12\r\nX-Fold: a\r\n b\r\n\r\n" + body,
        start + "Content-Length: 12\r\nX-Nul: a\u{0}b\r\n\r\n" + body,
        start + "Content-Length: 12\r\nX-Huge: " + String(repeating: "h", count: 70_000)
          + "\r\n\r\n" + body,
        start + String(repeating: "X-Many: 1\r\n", count: 400) + "Content-Length: 12\r\n\r\n"
          + body,
      ]
    }
    requests += [
      "GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", "GET\r\n\r\n",
      "GET /health?\u{0} HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /" + String(repeating: "u", count: 70_000) + " HTTP/1.1\r\n\r\n",
      "\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\u{01}\u{fc}\u{03}\u{03}",
    ]
    // RFC 9112 lets Transfer-Encoding override Content-Length; NIO does so (a server may), and
    // passes a coding it does not know ahead of `chunked` through as bytes.
    let tolerated = [
      "Content-Length: 12\r\nTransfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked",
    ]
    run("framing", requests, malformed: { text in !tolerated.contains { text.contains($0) } }) {
      text in
      // A peer that closes on an oversized head may reset before its 400 is read.
      try agent.raw(Array(text.utf8), timeout: 20, allowClose: text.utf8.count > 60_000)
    }
  }

  func testConnectJSONOfWrongShapes() throws {
    var random = SeededGenerator(seed: 4242)
    var bodies: [String] = [
      "", "{", "[]", "null", "\"x\"", "1", "{\"path\":1}", "{\"path\":null}", "{\"path\":[\"/\"]}",
      "{\"path\":{\"a\":1}}", "{\"path\":true}", "{\"path\":\"/\",\"depth\":-1}",
      "{\"path\":\"/\",\"depth\":1e400}", "{\"path\":\"/\",\"depth\":99999999999999999999999}",
      "{\"path\":\"/\",\"depth\":\"3\"}", "{\"path\":\"/\",\"depth\":1.5}",
      "{\"path\":\"\\ud800\"}", "{\"path\":\"\\u0000\"}", "{\"path\":\"/\"} trailing",
      "{\"path\":\"/\",\"path\":\"/dir\"}", "\u{feff}{\"path\":\"/\"}",
      String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000),
      String(repeating: "{\"a\":", count: 5_000) + "1" + String(repeating: "}", count: 5_000),
    ]
    let keys = [
      "path", "depth", "source", "destination", "watcherId", "process", "pid", "tag", "x",
    ]
    let values = [
      "1", "-1", "1e309", "\"/\"", "null", "true", "[]", "{}", "\"\\u0000\"",
      "184467440737095516160",
      "\"" + String(repeating: "z", count: 5000) + "\"",
    ]
    while bodies.count < 60 {
      let pairs = (0..<Int.random(in: 0...4, using: &random)).map { _ in
        "\"\(keys.randomElement(using: &random)!)\":\(values.randomElement(using: &random)!)"
      }
      var text = "{" + pairs.joined(separator: ",") + "}"
      if Bool.random(using: &random) {
        text = String(text.prefix(Int.random(in: 0...text.count, using: &random)))
      }
      bodies.append(text)
    }
    let methods = [
      "filesystem.Filesystem/Stat", "filesystem.Filesystem/ListDir",
      "filesystem.Filesystem/MakeDir",
      "filesystem.Filesystem/Move", "filesystem.Filesystem/GetWatcherEvents",
      "filesystem.Filesystem/RemoveWatcher", "process.Process/SendSignal", "process.Process/List",
      "process.Process/CloseStdin",
    ]
    for method in methods {
      run(method, bodies, malformed: { _ in false }) {
        try agent.raw("POST", "/\(method)", headers: json, body: Array($0.utf8))
      }
    }
  }

  func testTruncatedAndOversizedEnvelopes() throws {
    let streaming = [
      "/filesystem.Filesystem/WatchDir", "/process.Process/Start", "/process.Process/Connect",
    ]
    func envelope(_ flags: UInt8, _ length: UInt32, _ payload: [UInt8]) -> [UInt8] {
      [flags] + withUnsafeBytes(of: length.bigEndian, Array.init) + payload
    }
    let payload = Array("{\"path\":\"/dir\"}".utf8)
    let single = envelope(0, UInt32(payload.count), payload)
    var bodies: [[UInt8]] = [[], [0], [0, 0, 0], envelope(0, 100, payload)]
    bodies.append(envelope(0, UInt32.max, payload))
    bodies.append(envelope(0xff, UInt32(payload.count), payload))
    bodies.append(envelope(1, UInt32(payload.count), payload))
    bodies.append(single + [0, 0])
    bodies.append(envelope(0, 3, Array("{{{".utf8)))
    bodies.append(envelope(0, 4, Array("null".utf8)))
    bodies.append(single + single)
    bodies.append(envelope(2, 0, []))
    for path in streaming {
      run(path, bodies, malformed: { _ in false }) { body in
        // Streams answer 200 and put the error in the end-of-stream message.
        let reply = try agent.raw(
          "POST", path,
          headers: [
            "Content-Type: application/connect+json", "Connect-Protocol-Version: 1",
            "Connect-Timeout-Ms: 2000",
          ], body: body)
        XCTAssertFalse(reply.text.contains("\"internal\""), "\(path): \(reply.text)")
        return reply
      }
    }
  }
}

final class VercelFuzzTests: AgentFuzzTestCase {
  override var agentArguments: [String] { ["--protocol", "vercel"] }
  let headers = ["Authorization: Bearer anything", "Content-Type: application/json"]

  func testJSONRoutes() throws {
    let lookup = try agent.raw("GET", "/api/v2/sandboxes/demo?projectId=p", headers: headers)
    let session = try XCTUnwrap(
      (lookup.json["sandbox"] as? [String: Any])?["currentSessionId"] as? String)
    let base = "/api/v2/sandboxes/sessions/\(session)/"
    let paths = FuzzPath.generate(count: 60, seed: 99)
    for route in ["fs/read", "fs/mkdir"] {
      run(route, paths, malformed: Self.refusedByVendorsInJSON) {
        try agent.raw(
          "POST", base + route, headers: headers,
          body: Self.pathJSON($0.bytes))
      }
    }
    let shapes = [
      "", "{", "[]", "{\"path\":1}", "{\"path\":null}", "{\"cmd\":1}", "{\"cmd\":\"\",\"args\":3}",
      "{\"signal\":\"x\"}", "{\"signal\":99999999999999999999}", "{\"data\":\"!!\",\"offset\":-5}",
      String(repeating: "[", count: 10_000),
    ]
    for route in ["fs/read", "fs/mkdir", "cmd", "cmd/nope/kill", "cmd/nope/stdin", "fs/write"] {
      // An empty body is an empty archive to fs/write.
      run(route, shapes, malformed: { !(route == "fs/write" && $0.isEmpty) }) {
        try agent.raw("POST", base + route, headers: headers, body: Array($0.utf8))
      }
    }
  }
}

final class LangSmithFuzzTests: AgentFuzzTestCase {
  override var agentArguments: [String] { ["--protocol", "langsmith"] }

  func testJSONAndFileRoutes() throws {
    let paths = FuzzPath.generate(count: 60, seed: 5)
    run("GET /download", paths, malformed: \.refusedByVendors) {
      try agent.raw("GET", "/download?path=" + Self.percentEncoded($0.bytes))
    }
    for route in ["/glob", "/grep"] {
      run(route, paths, malformed: Self.refusedByVendorsInJSON) {
        try agent.raw(
          "POST", route, headers: ["Content-Type: application/json"],
          body: Self.pathJSON($0.bytes, extra: ",\"pattern\":\"*\""))
      }
    }
    let shapes = [
      "", "{", "[]", "{\"path\":1}", "{\"pattern\":null}", "{\"command\":1}",
      String(repeating: "{\"a\":", count: 5000),
    ]
    for route in ["/glob", "/grep", "/execute/stream/start", "/execute/stream/resume"] {
      run(route, shapes, malformed: { _ in true }) {
        try agent.raw(
          "POST", route, headers: ["Content-Type: application/json"], body: Array($0.utf8))
      }
    }
    run("multipart /upload", paths, malformed: \.refusedByVendors) { path in
      let body =
        Array(
          "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nd\r\n--b--\r\n"
            .utf8)
      return try agent.raw(
        "POST", "/upload?path=" + Self.percentEncoded(path.bytes),
        headers: ["Content-Type: multipart/form-data; boundary=b"], body: body)
    }
  }
}
