import Backend
import HTTPTransport
import Synchronization

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

extension EnvdRemote {
  /// envd's `filesystem.Filesystem/WatchDir` (server streaming, not recursive), the same on
  /// stock envd and on sandbox-agent.
  public func watchDirectory(_ path: String) -> AsyncThrowingStream<RemoteWatchEvent, any Error> {
    let client = connection.client
    return AsyncThrowingStream { continuation in
      let task = Task {
        do {
          try await client.watch(path, continuation: continuation)
          continuation.finish()
        } catch {
          continuation.finish(throwing: error)
        }
      }
      continuation.onTermination = { _ in task.cancel() }
    }
  }
}

extension EnvdClient {
  /// Seconds between the server's keepalives: a silent agent is noticed by the low-speed limit
  /// (1 byte/s over --io-timeout), which a keepalive of 21 bytes every 5 s keeps clear of.
  static let watchKeepalive = 5

  fileprivate func watch(
    _ path: String, continuation: AsyncThrowingStream<RemoteWatchEvent, any Error>.Continuation
  ) async throws {
    let context = "watch \(path)"
    struct Request: Encodable {
      var path: String
      var recursive = false
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let json = try Array(encoder.encode(Request(path: protocolPath(path))))
    let length = UInt32(json.count)
    let body =
      [
        0, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF),
        UInt8(length & 0xFF),
      ] + json
    let parser = WatchStreamParser(continuation: continuation)
    let response = try await postStream(
      route: "/filesystem.Filesystem/WatchDir",
      HTTPRequest(
        method: .post, url: "",
        headers: [
          "Content-Type: application/connect+json", "Connect-Protocol-Version: 1",
          "Keepalive-Ping-Interval: \(Self.watchKeepalive)",
        ],
        body: .bytes(body), sink: .chunks(parser)))
    if let failure = parser.failure { throw failure.withContext(context) }
    if let failure = transportError(response, context: context) { throw failure }
    guard response.status == 200 else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
    guard parser.ended else { throw RemoteError(errno: EIO, "\(context): the stream broke off") }
  }
}

/// Connect envelopes of a WatchDir answer, parsed as they arrive (on curl's thread).
final class WatchStreamParser: ResponseChunkReceiver, @unchecked Sendable {
  // Touched only on curl's thread while the transfer runs, read after it completed.
  private var buffer: [UInt8] = []
  private let continuation: AsyncThrowingStream<RemoteWatchEvent, any Error>.Continuation
  private(set) var failure: RemoteError?
  private(set) var ended = false

  /// A message larger than this is no watch event.
  static let messageLimit = 1 << 20

  init(continuation: AsyncThrowingStream<RemoteWatchEvent, any Error>.Continuation) {
    self.continuation = continuation
  }

  private struct EndStream: Decodable {
    struct Failure: Decodable {
      var code: String?
      var message: String?
    }
    var error: Failure?
  }

  func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
    buffer.append(contentsOf: bytes)
    var position = 0
    defer { buffer.removeFirst(position) }
    while buffer.count - position >= 5 {
      let flags = buffer[position]
      let length =
        Int(buffer[position + 1]) << 24 | Int(buffer[position + 2]) << 16
        | Int(buffer[position + 3]) << 8 | Int(buffer[position + 4])
      guard length <= Self.messageLimit else {
        failure = RemoteError(errno: EIO, "a watch message of \(length) bytes")
        return false
      }
      guard buffer.count - position - 5 >= length else { break }
      let body = (position + 5)..<(position + 5 + length)
      position += 5 + length
      // The common messages are read in place; only the rest becomes a Data for JSONDecoder.
      if flags & 0x02 == 0,
        let message = buffer[body].withUnsafeBufferPointer(WatchStreamMessage.init(fastJSON:))
      {
        deliver(message)
        continue
      }
      let json = Data(buffer[body])
      if flags & 0x02 != 0 {
        if let error = (try? JSONDecoder().decode(EndStream.self, from: json))?.error {
          let code = error.code ?? "unknown"
          let message = error.message ?? ""
          failure = RemoteError(
            errno: EnvdErrorMapping.errno(connectCode: code, message: message),
            "\(message) [\(code)]")
        }
        ended = true
        return failure == nil
      }
      guard let message = try? JSONDecoder().decode(WatchStreamMessage.self, from: json) else {
        continue
      }
      deliver(message)
    }
    return true
  }

  private func deliver(_ message: WatchStreamMessage) {
    if message.start != nil { continuation.yield(.started) }
    if let event = message.filesystem, let name = event.name, let change = Self.change(event.type) {
      continuation.yield(.changed(name: name, change))
    }
  }

  static func change(_ type: String?) -> RemoteChange? {
    switch type {
    case "EVENT_TYPE_CREATE": .created
    case "EVENT_TYPE_WRITE": .written
    case "EVENT_TYPE_REMOVE": .removed
    case "EVENT_TYPE_RENAME": .renamed
    case "EVENT_TYPE_CHMOD": .attributesChanged
    default: nil
    }
  }
}

/// One message of a `WatchDir` stream: `{"start":{}}`, `{"filesystem":{"name":…,"type":…}}` or
/// a keepalive.
struct WatchStreamMessage: Decodable, Equatable {
  struct Filesystem: Decodable, Equatable {
    var name: String?
    var type: String?
  }
  struct Empty: Decodable, Equatable {}
  var start: Empty?
  var filesystem: Filesystem?
}

/// JSONDecoder took 8% of the daemon's CPU in a loop of renames, decoding the watch's echoes of
/// them (two per rename).
extension WatchStreamMessage: FastJSONDecodable {
  init?(fastJSON bytes: UnsafeBufferPointer<UInt8>) {
    var scanner = JSONScanner(bytes)
    var message = WatchStreamMessage()
    // Keys read so far: start, filesystem, name, type. A repeat is JSONDecoder's to judge.
    var seen: UInt8 = 0
    func first(_ key: UInt8) -> Bool {
      defer { seen |= key }
      return seen & key == 0
    }
    guard scanner.consume(UInt8(ascii: "{")),
      scanner.members({ scanner, key in
        if key.spells("start") {
          guard first(1) else { return false }
          if scanner.consumeNull() { return true }
          guard scanner.consume(UInt8(ascii: "{")) else { return false }
          message.start = Empty()
          return scanner.members { scanner, _ in scanner.skipValue() }
        }
        guard key.spells("filesystem") else { return scanner.skipValue() }
        guard first(2) else { return false }
        if scanner.consumeNull() { return true }
        guard scanner.consume(UInt8(ascii: "{")) else { return false }
        var event = Filesystem()
        guard
          scanner.members({ scanner, key in
            let isName = key.spells("name")
            guard isName || key.spells("type") else { return scanner.skipValue() }
            guard first(isName ? 4 : 8) else { return false }
            if scanner.consumeNull() { return true }
            guard let value = scanner.string() else { return false }
            if isName { event.name = value } else { event.type = value }
            return true
          })
        else { return false }
        message.filesystem = event
        return true
      }), scanner.isAtEnd
    else { return nil }
    self = message
  }
}

extension RemoteError {
  fileprivate func withContext(_ context: String) -> RemoteError {
    var copy = self
    copy.message = "\(context): \(message)"
    return copy
  }
}
