import Foundation
import TestSupport
import XCTest

/// Builds Connect envelopes, calls the agent with the `curl` CLI, and parses what comes back.
enum ConnectWire {
  static func envelope(_ json: String, flags: UInt8 = 0) -> Data {
    let payload = Data(json.utf8)
    var data = Data([flags])
    withUnsafeBytes(of: UInt32(payload.count).bigEndian) { data.append(contentsOf: $0) }
    data.append(payload)
    return data
  }

  struct Frame {
    var flags: UInt8
    var json: [String: Any]
    var isEndStream: Bool { flags & 0x02 != 0 }
  }

  /// Splits a response body into frames; trailing bytes of an unfinished frame are ignored.
  static func frames(_ data: Data) -> [Frame] {
    var frames: [Frame] = []
    let bytes = [UInt8](data)
    var offset = 0
    while offset + 5 <= bytes.count {
      let length =
        Int(bytes[offset + 1]) << 24 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 8
        | Int(bytes[offset + 4])
      guard offset + 5 + length <= bytes.count else { break }
      let payload = Data(bytes[(offset + 5)..<(offset + 5 + length)])
      let json = (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any] ?? [:]
      frames.append(Frame(flags: bytes[offset], json: json))
      offset += 5 + length
    }
    return frames
  }

  struct Reply {
    var status: Int
    var headers: String
    var body: Data
    var frames: [Frame] { ConnectWire.frames(body) }
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] {
      (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
    }
  }

  /// POSTs `body` to `path` and waits for the whole answer.
  static func post(
    _ agent: RunningAgent, _ path: String, body: Data,
    contentType: String = "application/connect+json", headers: [String] = [],
    maxTime: Int = 30
  ) throws -> Reply {
    let folder = try TemporaryDirectory(prefix: "curl")
    defer { folder.remove() }
    let request = folder.path + "/request"
    let response = folder.path + "/response"
    let head = folder.path + "/headers"
    try body.write(to: URL(fileURLWithPath: request))
    var arguments = [
      "curl", "-sS", "--max-time", String(maxTime), "-o", response, "-D", head,
      "-w", "%{http_code}", "-H", "Content-Type: \(contentType)", "--data-binary", "@" + request,
    ]
    for header in headers { arguments += ["-H", header] }
    arguments.append(agent.url + path)
    let result = try runCommand(arguments, timeout: TimeInterval(maxTime + 10))
    return Reply(
      status: Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
      headers: (try? String(contentsOfFile: head, encoding: .utf8)) ?? "",
      body: (try? Data(contentsOf: URL(fileURLWithPath: response))) ?? Data())
  }

  static func stream(
    _ agent: RunningAgent, _ path: String, _ json: String, headers: [String] = [],
    maxTime: Int = 30
  ) throws -> Reply {
    try post(agent, path, body: envelope(json), headers: headers, maxTime: maxTime)
  }

  static func unary(_ agent: RunningAgent, _ path: String, _ json: String, headers: [String] = [])
    throws -> Reply
  {
    try post(agent, path, body: Data(json.utf8), contentType: "application/json", headers: headers)
  }
}

/// A streaming call running in the background (curl writing to a file), for watches and for
/// processes fed through SendInput.
final class BackgroundStream {
  let folder: TemporaryDirectory
  let child: ChildProcess
  let output: String

  init(
    _ agent: RunningAgent, _ path: String, _ json: String, headers: [String] = [],
    maxTime: Int = 20
  ) throws {
    folder = try TemporaryDirectory(prefix: "curl-bg")
    output = folder.path + "/response"
    let request = folder.path + "/request"
    try ConnectWire.envelope(json).write(to: URL(fileURLWithPath: request))
    var arguments = [
      "-sS", "-N", "--max-time", String(maxTime), "-o", output,
      "-H", "Content-Type: application/connect+json", "--data-binary", "@" + request,
    ]
    for header in headers { arguments += ["-H", header] }
    arguments.append(agent.url + path)
    child = try ChildProcess(executable: "/usr/bin/curl", arguments: arguments)
  }

  var frames: [ConnectWire.Frame] {
    ConnectWire.frames((try? Data(contentsOf: URL(fileURLWithPath: output))) ?? Data())
  }

  /// Waits until `condition` holds for the frames received so far.
  @discardableResult
  func waitFor(timeout: TimeInterval = 10, _ condition: ([ConnectWire.Frame]) -> Bool) -> Bool {
    child.waitFor(timeout: timeout) { condition(self.frames) }
  }

  func finish(timeout: TimeInterval = 20) -> [ConnectWire.Frame] {
    child.waitForExit(timeout: timeout)
    return frames
  }

  /// Aborts the transfer, as a client closing the stream does.
  func abort() { child.stop(grace: 1) }

  deinit {
    child.stop(grace: 1)
    folder.remove()
  }
}

extension ConnectWire.Frame {
  /// `{"event":{KIND:…}}` of process.Start, or the top-level oneof of WatchDir.
  var processEvent: [String: Any]? { json["event"] as? [String: Any] }
  var error: [String: Any]? { json["error"] as? [String: Any] }
  var errorCode: String? { error?["code"] as? String }
}

extension Array where Element == ConnectWire.Frame {
  /// Concatenated stdout (or stderr) of a process.Start stream.
  func output(_ stream: String) -> String {
    var data = Data()
    for frame in self {
      if let chunk = (frame.processEvent?["data"] as? [String: Any])?[stream] as? String,
        let bytes = Data(base64Encoded: chunk)
      {
        data.append(bytes)
      }
    }
    return String(decoding: data, as: UTF8.self)
  }

  var end: [String: Any]? {
    compactMap { $0.processEvent?["end"] as? [String: Any] }.first
  }

  var startPID: Int? {
    compactMap { ($0.processEvent?["start"] as? [String: Any])?["pid"] as? Int }.first
  }

  var endStream: ConnectWire.Frame? { last(where: { $0.isEndStream }) }

  /// WatchDir events as `TYPE name` strings.
  var watchEvents: [String] {
    compactMap { frame in
      guard let event = frame.json["filesystem"] as? [String: Any],
        let type = event["type"] as? String, let name = event["name"] as? String
      else { return nil }
      return type.replacingOccurrences(of: "EVENT_TYPE_", with: "") + " " + name
    }
  }
}
