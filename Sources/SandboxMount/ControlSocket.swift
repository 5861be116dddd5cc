import Foundation

/// A unix socket through which `sandbox-mount status` asks a running daemon how it is: one
/// request line in, one JSON object out. A thread of its own: accept and read block.
final class ControlSocket: Sendable {
  let path: String
  private let descriptor: Int32

  /// Listens at `path` (a stale socket from a dead daemon is replaced); `answer` builds the
  /// reply to a request line.
  init(path: String, answer: @escaping @Sendable (String) -> String) throws {
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    unlink(path)
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw MountFailure("cannot make the control socket \(path)") }
    var address = Self.address(path)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard bound == 0, listen(descriptor, 8) == 0 else {
      close(descriptor)
      throw MountFailure(
        "cannot listen on the control socket \(path): \(String(cString: strerror(errno)))")
    }
    chmod(path, 0o600)
    self.path = path
    self.descriptor = descriptor
    let thread = Thread {
      while true {
        let client = accept(descriptor, nil, nil)
        if client < 0 {
          if errno == EINTR { continue }
          return
        }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Self.readLine(client)
        let reply = Array((answer(request) + "\n").utf8)
        _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(client)
      }
    }
    thread.name = "sandbox-mount control"
    thread.start()
  }

  func remove() {
    unlink(path)
    shutdown(descriptor, Int32(SHUT_RDWR))
  }

  /// Sends `request` to the daemon at `path` and returns its reply; nil if none listens.
  static func ask(_ request: String, at path: String) -> String? {
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = address(path)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard connected == 0 else { return nil }
    let line = Array((request + "\n").utf8)
    _ = line.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var reply: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
      if count <= 0 { break }
      reply += buffer[..<count]
    }
    return reply.isEmpty ? nil : String(decoding: reply, as: UTF8.self)
  }

  private static func readLine(_ descriptor: Int32) -> String {
    var bytes: [UInt8] = []
    var byte: UInt8 = 0
    while bytes.count < 1024, recv(descriptor, &byte, 1, 0) == 1, byte != UInt8(ascii: "\n") {
      bytes.append(byte)
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  private static func address(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      let bytes = Array(path.utf8.prefix(raw.count - 1))
      raw.copyBytes(from: bytes)
    }
    return address
  }
}
