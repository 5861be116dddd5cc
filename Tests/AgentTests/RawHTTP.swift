import Foundation
import Glibc
import TestSupport
import XCTest

/// A bare TCP connection to a loopback agent, for requests no HTTP client would send: broken
/// framing, half-sent heads, NUL bytes.
final class RawConnection {
  let fd: Int32

  init(url: String, timeout: TimeInterval = 10) throws {
    guard let port = URL(string: url)?.port else { throw RawHTTPError("no port in \(url)") }
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw RawHTTPError("socket: \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else {
      close(fd)
      throw RawHTTPError("connect: \(errno)")
    }
    var interval = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit { close(fd) }

  func send(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes[offset...].withUnsafeBytes {
        Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
      }
      guard sent > 0 else { throw RawHTTPError("send: \(errno)") }
      offset += sent
    }
  }

  func send(_ text: String) throws { try send(Array(text.utf8)) }

  /// Everything until the peer closes (or the timeout, which throws).
  func readToEnd() throws -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if count == 0 { return result }
      if count < 0 {
        if errno == ECONNRESET { return result }
        throw RawHTTPError("recv: errno \(errno) after \(result.count) bytes")
      }
      result += buffer[..<count]
    }
  }

  /// One response on a kept-alive connection: its head, then a Content-Length body.
  func readResponse() throws -> RawResponse {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      if let response = RawResponse(data), response.isComplete { return response }
      let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      guard count > 0 else {
        if let response = RawResponse(data) { return response }
        throw RawHTTPError("connection ended after \(data.count) bytes")
      }
      data += buffer[..<count]
    }
  }

  /// Whether the agent sent anything, or closed (within `wait` seconds).
  func isReadable(within wait: TimeInterval) -> Bool {
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&poller, 1, Int32(wait * 1000)) > 0
  }

  /// Whether the agent has closed this connection (within `wait` seconds).
  func isClosed(within wait: TimeInterval) -> Bool {
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&poller, 1, Int32(wait * 1000)) > 0 else { return false }
    var byte: UInt8 = 0
    let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
    return count == 0 || (count < 0 && errno == ECONNRESET)
  }
}

/// A response as bytes came: status, lower-cased headers, body (chunked bodies decoded).
struct RawResponse {
  var status: Int
  var headers: [String: String]
  var body: [UInt8]
  var isComplete: Bool

  var text: String { String(decoding: body, as: UTF8.self) }
  var json: [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
  }

  init?(_ bytes: [UInt8]) {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let headEnd = bytes.firstRange(of: separator) else { return nil }
    let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
    var lines = head.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
    self.status = status
    headers = [:]
    for line in lines {
      guard let colon = line.firstIndex(of: ":") else { continue }
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
        .trimmingCharacters(in: .whitespaces)
    }
    let rest = Array(bytes[headEnd.upperBound...])
    if let length = headers["content-length"].flatMap({ Int($0) }) {
      body = Array(rest.prefix(length))
      isComplete = rest.count >= length
    } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
      (body, isComplete) = Self.dechunk(rest)
    } else {
      body = rest
      isComplete = status == 204 || status == 304 || (100..<200).contains(status)
    }
  }

  static func dechunk(_ bytes: [UInt8]) -> ([UInt8], Bool) {
    var body: [UInt8] = []
    var index = 0
    while let lineEnd = bytes[index...].firstRange(of: [13, 10]) {
      let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self)
      guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else {
        return (body, false)
      }
      let start = lineEnd.upperBound
      if size == 0 { return (body, true) }
      guard start + size + 2 <= bytes.count else { return (body, false) }
      body += bytes[start..<start + size]
      index = start + size + 2
    }
    return (body, false)
  }
}

struct RawHTTPError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

extension RunningAgent {
  /// Sends `request` on a new connection and reads the answer until the agent closes it.
  /// With `allowClose`, a connection closed (or reset) without an answer is nil.
  func raw(_ request: [UInt8], timeout: TimeInterval = 10, allowClose: Bool = false) throws
    -> RawResponse?
  {
    let connection = try RawConnection(url: url, timeout: timeout)
    do {
      try connection.send(request)
    } catch  where allowClose {
      return nil
    }
    shutdown(connection.fd, Int32(SHUT_WR))
    let bytes = try connection.readToEnd()
    if bytes.isEmpty && allowClose { return nil }
    guard let response = RawResponse(bytes) else {
      throw RawHTTPError("no HTTP response: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
    }
    return response
  }

  /// `method path` with `headers` and `body` (Content-Length added unless `framed`).
  func raw(
    _ method: String, _ path: String, headers: [String] = [], body: [UInt8] = [],
    framed: Bool = false
  ) throws -> RawResponse {
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for header in headers { head += header + "\r\n" }
    if !framed { head += "Content-Length: \(body.count)\r\n" }
    head += "\r\n"
    guard let response = try raw(Array(head.utf8) + body) else {
      throw RawHTTPError("closed without an answer")
    }
    return response
  }
}

/// A small deterministic generator (xorshift64*), so every run feeds the same inputs.
struct SeededGenerator: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

  mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 0x2545_F491_4F6C_DD1D
  }
}
