import Foundation
import Glibc
import XCTest

/// Calls answered before the router (`InlineUnaryHandler`) keep HTTP/1.1's order: a client that
/// pipelines gets its answers in the order it asked, whichever path answers each.
final class InlineUnaryTests: ExtensionTestCase {
  private func connect() throws -> Int32 {
    let hostPort = agent.url.replacingOccurrences(of: "http://", with: "")
    let port = UInt16(hostPort.split(separator: ":").last!)!
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    XCTAssertEqual(connected, 0)
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return socket
  }

  private func post(_ method: String, _ json: String) -> String {
    "POST /sandboxagent.v1.Extension/\(method) HTTP/1.1\r\nHost: x\r\n"
      + "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
  }

  /// Reads `count` responses with Content-Length bodies: (status, body) each.
  private func readResponses(_ socket: Int32, count: Int) throws -> [(Int, String)] {
    var buffer: [UInt8] = []
    var responses: [(Int, String)] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while responses.count < count {
      let headEnd = buffer.indices.dropLast(3).first {
        buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10
      }
      if let headEnd {
        let head = String(decoding: buffer[..<headEnd], as: UTF8.self)
        let status = Int(head.split(separator: " ")[1])!
        let length =
          head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
          .map { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))! } ?? 0
        if buffer.count >= headEnd + 4 + length {
          let body = String(decoding: buffer[(headEnd + 4)..<(headEnd + 4 + length)], as: UTF8.self)
          responses.append((status, body))
          buffer.removeFirst(headEnd + 4 + length)
          continue
        }
      }
      let received = recv(socket, &chunk, chunk.count, 0)
      guard received > 0 else { throw NSError(domain: "recv", code: Int(errno)) }
      buffer += chunk[..<received]
    }
    return responses
  }

  func testPipelinedCallsAreAnsweredInOrder() throws {
    try FileManager.default.createDirectory(
      atPath: hostPath("big"), withIntermediateDirectories: true)
    for index in 0..<3000 {
      FileManager.default.createFile(atPath: hostPath("big/f\(index)"), contents: nil)
    }
    try put("a", Data("a".utf8))
    try put("bb", Data("bb".utf8))
    let socket = try connect()
    defer { close(socket) }
    // A listing (thread pool), a stat (event loop), a route only the router serves, a stat.
    let requests =
      post("ListDir", #"{"path":"/big"}"#) + post("Stat", #"{"path":"/a"}"#)
      + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post("Stat", #"{"path":"/bb"}"#)
    let bytes = Array(requests.utf8)
    XCTAssertEqual(send(socket, bytes, bytes.count, 0), bytes.count)
    let responses = try readResponses(socket, count: 4)
    XCTAssertEqual(responses.map(\.0), [200, 200, 204, 200])
    XCTAssertTrue(responses[0].1.contains(#""name":"f2999""#))
    XCTAssertTrue(responses[1].1.contains(#""size":"1""#), String(responses[1].1.prefix(300)))
    XCTAssertTrue(responses[3].1.contains(#""size":"2""#), String(responses[3].1.prefix(300)))
  }

  func testErrorsAndUnknownUsersAnswerAsTheRouterDoes() throws {
    let missing = try client.ext("Stat", #"{"path":"/nope"}"#)
    XCTAssertEqual(missing.status, 404)
    XCTAssertEqual(missing.errnoName, "ENOENT")
    let malformed = try client.ext("Stat", #"{"path":"#)
    XCTAssertEqual(malformed.status, 400)
    let unknownUser = try client.ext(
      "Stat", #"{"path":"/"}"#, headers: ["Authorization: Basic bm8tc3VjaC11c2VyOg=="])
    XCTAssertEqual(unknownUser.status, 401)
  }
}
