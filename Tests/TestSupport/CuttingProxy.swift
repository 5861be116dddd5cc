import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A loopback TCP proxy that cuts WebSocket connections in the middle of the server's output:
/// after `afterBytes` bytes past the upgrade's answer, it either drops the connection or sends
/// a close frame with `closeCode` first (1001: the server is reloading). Only the first `cuts`
/// WebSocket connections are cut; everything else passes untouched. Blocking threads: tests only.
public final class CuttingProxy: @unchecked Sendable {
  public let port: Int
  public var url: String { "http://127.0.0.1:\(port)" }
  private let upstreamPort: Int
  private let afterBytes: Int
  private let closeCode: UInt16?
  private let listener: Int32
  private let lock = NSLock()
  private var cutsLeft: Int
  private var cutCount = 0

  /// Connections cut so far.
  public var cuts: Int { lock.withLock { cutCount } }

  public init(upstreamPort: Int, afterBytes: Int, closeCode: UInt16? = nil, cuts: Int = 1) throws {
    self.upstreamPort = upstreamPort
    self.afterBytes = afterBytes
    self.closeCode = closeCode
    cutsLeft = cuts
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    self.listener = listener
    var address = Self.loopback(port: 0)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0, listen(listener, 64) == 0 else {
      throw TestSupportError("proxy: bind/listen failed: \(errno)")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
    }
    port = Int(UInt16(bigEndian: address.sin_port))
    Thread { [self] in acceptLoop() }.start()
  }

  public func stop() {
    shutdown(listener, Int32(SHUT_RDWR))
    close(listener)
  }

  private static func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
  }

  private func acceptLoop() {
    while true {
      let client = accept(listener, nil, nil)
      guard client >= 0 else { return }
      let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      var address = Self.loopback(port: upstreamPort)
      let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      guard connected == 0 else {
        close(client)
        close(upstream)
        continue
      }
      Thread { [self] in serve(client: client, upstream: upstream) }.start()
    }
  }

  private func serve(client: Int32, upstream: Int32) {
    // The request's first bytes tell a WebSocket upgrade from a plain request.
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    let first = read(client, &buffer, buffer.count)
    guard first > 0 else {
      close(client)
      close(upstream)
      return
    }
    let head = String(decoding: buffer[..<first], as: UTF8.self)
    _ = buffer.withUnsafeBytes { write(upstream, $0.baseAddress, first) }
    let cutsThis =
      head.hasPrefix("GET /execute/ws")
      && lock.withLock {
        guard cutsLeft > 0 else { return false }
        cutsLeft -= 1
        return true
      }
    Thread { Self.pump(from: client, to: upstream) }.start()
    var upgraded = false
    var pending = [UInt8]()
    var forwarded = 0
    func send(_ bytes: some Collection<UInt8>) {
      _ = Array(bytes).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
    }
    relay: while true {
      let count = read(upstream, &buffer, buffer.count)
      guard count > 0 else { break }
      guard cutsThis else {
        send(buffer[..<count])
        continue
      }
      pending += buffer[..<count]
      if !upgraded {
        guard let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) else { continue }
        send(pending[..<end.upperBound])
        pending.removeFirst(end.upperBound)
        upgraded = true
      }
      // Whole frames (server frames are unmasked), so a close frame lands between two.
      while let size = Self.frameSize(pending), size <= pending.count {
        if forwarded >= afterBytes {
          if let closeCode {
            send([0x88, 0x02, UInt8(closeCode >> 8), UInt8(closeCode & 0xff)])
          } else {
            // A cut in the middle of a frame, as a broken link leaves it.
            send(pending[..<(size / 2)])
          }
          lock.withLock { cutCount += 1 }
          break relay
        }
        send(pending[..<size])
        pending.removeFirst(size)
        forwarded += size
      }
    }
    shutdown(client, Int32(SHUT_RDWR))
    shutdown(upstream, Int32(SHUT_RDWR))
    close(client)
    close(upstream)
  }

  /// The whole size of the frame at the start of `bytes`, once its header is there.
  private static func frameSize(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 2 else { return nil }
    let length = Int(bytes[1] & 0x7f)
    switch length {
    case 126:
      guard bytes.count >= 4 else { return nil }
      return 4 + (Int(bytes[2]) << 8 | Int(bytes[3]))
    case 127:
      guard bytes.count >= 10 else { return nil }
      return 10 + bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
    default: return 2 + length
    }
  }

  private static func pump(from source: Int32, to target: Int32) {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
      let count = read(source, &buffer, buffer.count)
      guard count > 0 else { break }
      guard buffer.withUnsafeBytes({ write(target, $0.baseAddress, count) }) == count else { break }
    }
    shutdown(target, Int32(SHUT_WR))
  }
}
