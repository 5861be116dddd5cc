import Foundation
import TestSupport
import XCTest

/// A real HTTP client for the agent: the `curl` command line, binary-safe through files.
struct AgentClient {
  let agent: RunningAgent

  struct Reply {
    var status: Int
    /// Header names lower-cased; the last value wins.
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] {
      (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
    }
    var jsonArray: [[String: Any]] {
      (try? JSONSerialization.jsonObject(with: body)) as? [[String: Any]] ?? []
    }
  }

  /// Runs curl against `path` (with query) and collects status, headers and body.
  func request(
    _ path: String, method: String = "GET", headers: [String] = [], body: Data? = nil,
    bodyFile: String? = nil, extra: [String] = []
  ) throws -> Reply {
    let folder = try TemporaryDirectory(prefix: "agent-client")
    defer { folder.remove() }
    let responseFile = folder.path + "/response"
    let headerFile = folder.path + "/headers"
    var arguments = [
      "curl", "-sS", "--max-time", "60", "-X", method, "-o", responseFile, "-D", headerFile,
      "-w", "%{http_code}",
    ]
    for header in headers { arguments += ["-H", header] }
    if let body {
      let requestFile = folder.path + "/request"
      try body.write(to: URL(fileURLWithPath: requestFile))
      arguments += ["--data-binary", "@" + requestFile]
    } else if let bodyFile {
      arguments += ["--data-binary", "@" + bodyFile]
    }
    arguments += extra
    arguments.append(agent.url + path)
    let result = try runCommand(arguments, timeout: 90)
    let rawHeaders = (try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? ""
    var parsed: [String: String] = [:]
    for line in rawHeaders.split(whereSeparator: \.isNewline) {
      guard let colon = line.firstIndex(of: ":") else { continue }
      parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...]
        .trimmingCharacters(in: .whitespaces)
    }
    return Reply(
      status: Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
      headers: parsed,
      body: (try? Data(contentsOf: URL(fileURLWithPath: responseFile))) ?? Data())
  }

  /// `GET /files?path=…` with the path percent-encoded.
  func download(_ path: String, headers: [String] = [], query: String = "") throws -> Reply {
    try request("/files?path=\(Self.encode(path))\(query)", headers: headers)
  }

  /// `POST /files?path=…` with an octet-stream body.
  func upload(_ path: String, _ data: Data, headers: [String] = []) throws -> Reply {
    try request(
      "/files?path=\(Self.encode(path))", method: "POST",
      headers: ["Content-Type: application/octet-stream"] + headers, body: data)
  }

  /// A Connect unary JSON call.
  func rpc(
    _ method: String, _ json: String, service: String = "filesystem.Filesystem",
    headers: [String] = []
  ) throws -> Reply {
    try request(
      "/\(service)/\(method)", method: "POST",
      headers: ["Content-Type: application/json", "Connect-Protocol-Version: 1"] + headers,
      body: Data(json.utf8))
  }

  static func encode(_ path: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "/-._~")
    return path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
  }
}

/// Starts an agent on a fresh temporary root for every test, and stops it afterwards.
class AgentTestCase: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!
  var client: AgentClient { AgentClient(agent: agent) }
  /// Extra arguments and environment for the agent of this test class.
  var agentArguments: [String] { [] }
  var agentEnvironment: [String: String]? { nil }

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-root")
    agent = try RunningAgent(
      root: root.path, arguments: agentArguments, environment: agentEnvironment)
  }

  override func tearDown() {
    agent?.stop()
    agent = nil
    root?.remove()
  }

  /// Writes `data` under the root (creating parents) and returns its host path.
  @discardableResult
  func put(_ relative: String, _ data: Data) throws -> String {
    let path = root.path + "/" + relative
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try data.write(to: URL(fileURLWithPath: path))
    return path
  }

  func hostPath(_ relative: String) -> String { root.path + "/" + relative }

  func randomData(_ count: Int) -> Data {
    var words = [UInt64](repeating: 0, count: count / 8 + 1)
    for index in words.indices { words[index] = UInt64.random(in: .min ... .max) }
    return words.withUnsafeBytes { Data($0.prefix(count)) }
  }
}
