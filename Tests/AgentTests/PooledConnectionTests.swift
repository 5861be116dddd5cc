import Foundation
import Glibc
import TestSupport
import XCTest

/// A client that keeps its connections, as every real HTTP/1.1 client (the E2B SDK's httpx
/// included) does: streaming and unary calls back to back on the same sockets.
final class PooledConnectionTests: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-pooled")
    agent = try RunningAgent(root: root.path)
  }

  override func tearDownWithError() throws {
    agent?.stop()
    root?.remove()
  }

  func testHundredsOfStreamingAndUnaryCallsOnTwoKeptConnections() throws {
    let connections = try (0..<2).map { _ in try KeptConnection(url: agent.url) }
    let echo = ConnectWire.envelope(#"{"process":{"cmd":"echo","args":["hi"]},"stdin":false}"#)
    let watch = ConnectWire.envelope(#"{"path":"/"}"#)
    var failures: [String] = []
    for round in 0..<100 {
      for (index, connection) in connections.enumerated() {
        let calls: [(String, () throws -> String?)] = [
          (
            "Start",
            {
              let reply = try connection.call(
                "/process.Process/Start", contentType: "application/connect+json", body: echo)
              let frames = ConnectWire.frames(reply.body)
              guard reply.status == 200, frames.output("stdout") == "hi\n",
                frames.last?.isEndStream == true, frames.last?.json["error"] == nil
              else { return "\(reply.status) \(String(decoding: reply.body, as: UTF8.self))" }
              return nil
            }
          ),
          (
            "Stat",
            {
              let reply = try connection.call(
                "/filesystem.Filesystem/Stat", contentType: "application/json",
                body: Data(#"{"path":"/"}"#.utf8))
              return reply.status == 200 ? nil : "\(reply.status)"
            }
          ),
          (
            "WatchDir",
            {
              let reply = try connection.call(
                "/filesystem.Filesystem/WatchDir", contentType: "application/connect+json",
                body: watch, headers: ["Connect-Timeout-Ms: 20"])
              let end = ConnectWire.frames(reply.body).endStream
              return end?.errorCode == "deadline_exceeded"
                ? nil : "\(reply.status) \(end?.json ?? [:])"
            }
          ),
          (
            "List",
            {
              let reply = try connection.call(
                "/process.Process/List", contentType: "application/json", body: Data("{}".utf8))
              return reply.status == 200 ? nil : "\(reply.status)"
            }
          ),
        ]
        for (name, call) in calls {
          do {
            if let failure = try call() {
              failures.append("round \(round) #\(index) \(name): \(failure)")
            }
          } catch {
            failures.append("round \(round) #\(index) \(name): \(error)")
            if failures.count > 20 { return XCTFail(failures.joined(separator: "\n")) }
          }
        }
      }
    }
    XCTAssertEqual(failures.count, 0, failures.prefix(20).joined(separator: "\n"))
  }

  /// connect-go reads a streaming call's request message before it answers; a client that sends
  /// its body after the head must see nothing back until then.
  func testStreamingAnswerWaitsForTheRequestMessage() throws {
    let connection = try KeptConnection(url: agent.url)
    let echo = ConnectWire.envelope(#"{"process":{"cmd":"echo","args":["hi"]},"stdin":false}"#)
    for _ in 0..<3 {
      let reply = try connection.call(
        "/process.Process/Start", contentType: "application/connect+json", body: echo,
        pauseBeforeBody: 0.2)
      XCTAssertFalse(reply.answeredBeforeBody, "the response head came before the request body")
      XCTAssertEqual(ConnectWire.frames(reply.body).output("stdout"), "hi\n")
    }
  }
}

/// One HTTP/1.1 connection, never reopened: a closed connection is a failed call.
private final class KeptConnection {
  struct Reply {
    var status: Int
    var body: Data
    var answeredBeforeBody = false
  }

  private let fd: Int32
  private let host: String
  private var received: [UInt8] = []

  init(url: String) throws {
    let address = url.replacingOccurrences(of: "http://", with: "")
    let parts = address.split(separator: ":")
    host = address
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var peer = sockaddr_in()
    peer.sin_family = sa_family_t(AF_INET)
    peer.sin_port = in_port_t(UInt16(parts[1])!).bigEndian
    inet_pton(AF_INET, String(parts[0]), &peer.sin_addr)
    let connected = withUnsafePointer(to: &peer) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else { throw TestSupportError("connect: errno \(errno)") }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit { close(fd) }

  func call(
    _ path: String, contentType: String, body: Data, headers: [String] = [],
    pauseBeforeBody: TimeInterval = 0
  ) throws -> Reply {
    var head = "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: \(contentType)\r\n"
    head += "Content-Length: \(body.count)\r\n"
    for header in headers { head += header + "\r\n" }
    head += "\r\n"
    var answeredEarly = false
    if pauseBeforeBody > 0 {
      try send(Data(head.utf8))
      var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      answeredEarly = poll(&poller, 1, Int32(pauseBeforeBody * 1000)) > 0
      try send(body)
    } else {
      try send(Data(head.utf8) + body)
    }
    var reply = try readReply()
    reply.answeredBeforeBody = answeredEarly
    return reply
  }

  private func send(_ data: Data) throws {
    try data.withUnsafeBytes { buffer in
      var offset = 0
      while offset < buffer.count {
        let sent = Glibc.send(
          fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
        guard sent > 0 else { throw TestSupportError("send: errno \(errno)") }
        offset += sent
      }
    }
  }

  private func readReply() throws -> Reply {
    let headText = String(decoding: try readUntil([13, 10, 13, 10]), as: UTF8.self)
    let lines = headText.components(separatedBy: "\r\n")
    guard let status = lines.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { throw TestSupportError("bad status line: \(headText)") }
    var fields: [String: String] = [:]
    for line in lines.dropFirst() {
      guard let colon = line.firstIndex(of: ":") else { continue }
      fields[line[..<colon].lowercased()] = line[line.index(after: colon)...]
        .trimmingCharacters(in: .whitespaces)
    }
    if fields["connection"]?.lowercased() == "close" {
      throw TestSupportError("the agent asked to close the connection")
    }
    var body = Data()
    if fields["transfer-encoding"]?.lowercased() == "chunked" {
      while true {
        let sizeLine = String(decoding: try readUntil([13, 10]), as: UTF8.self)
        guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
          throw TestSupportError("bad chunk size: \(sizeLine)")
        }
        if size == 0 {
          _ = try readUntil([13, 10])
          break
        }
        body.append(contentsOf: try readExactly(size))
        _ = try readExactly(2)
      }
    } else {
      body = Data(try readExactly(Int(fields["content-length"] ?? "0") ?? 0))
    }
    return Reply(status: status, body: body)
  }

  /// Bytes up to and including `terminator`, minus the terminator.
  private func readUntil(_ terminator: [UInt8]) throws -> [UInt8] {
    while true {
      if let end = find(terminator) {
        let bytes = Array(received[..<end])
        received.removeFirst(end + terminator.count)
        return bytes
      }
      try fill()
    }
  }

  private func readExactly(_ count: Int) throws -> [UInt8] {
    while received.count < count { try fill() }
    let bytes = Array(received[..<count])
    received.removeFirst(count)
    return bytes
  }

  private func find(_ pattern: [UInt8]) -> Int? {
    guard received.count >= pattern.count else { return nil }
    for start in 0...(received.count - pattern.count)
    where received[start..<(start + pattern.count)].elementsEqual(pattern) {
      return start
    }
    return nil
  }

  private func fill() throws {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    let count = recv(fd, &buffer, buffer.count, 0)
    if count == 0 { throw TestSupportError("connection closed by the agent") }
    guard count > 0 else { throw TestSupportError("recv: errno \(errno)") }
    received.append(contentsOf: buffer[..<count])
  }
}
