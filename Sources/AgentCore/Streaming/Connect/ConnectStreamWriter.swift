import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Writes a Connect server-streaming response body: one envelope per message, then the
/// end-stream envelope `{}` or `{"error":{"code":…,"message":…}}` (protocol doc §5.2).
struct ConnectStreamWriter {
  private var body: any ResponseBodyWriter
  private let allocator = ByteBufferAllocator()

  init(_ body: any ResponseBodyWriter) {
    self.body = body
  }

  mutating func send<Message: Encodable>(_ message: Message) async throws {
    try await body.write(Self.frame(ProtoJSON.encode(message), flags: 0, allocator: allocator))
  }

  /// One envelope per message, written together: one flush, one wakeup of the reader.
  mutating func send<Message: Encodable>(contentsOf messages: [Message]) async throws {
    var frames = allocator.buffer(capacity: 0)
    for message in messages { Self.appendFrame(ProtoJSON.encode(message), flags: 0, to: &frames) }
    try await body.write(frames)
  }

  /// Ends the stream; `error` nil means success.
  consuming func finish(_ error: ConnectError?) async throws {
    try await body.write(
      Self.frame(Self.endStreamPayload(error), flags: Envelope.endStreamFlag, allocator: allocator))
    try await body.finish(nil)
  }

  static func endStreamPayload(_ error: ConnectError?) -> Data {
    struct EndStream: Encodable {
      struct Failure: Encodable {
        var code: String
        var message: String
      }
      var error: Failure?
    }
    return ProtoJSON.encode(
      EndStream(error: error.map { .init(code: $0.code.rawValue, message: $0.message) }))
  }

  static func frame(_ payload: Data, flags: UInt8, allocator: ByteBufferAllocator) -> ByteBuffer {
    var buffer = allocator.buffer(capacity: Envelope.prefixLength + payload.count)
    appendFrame(payload, flags: flags, to: &buffer)
    return buffer
  }

  static func appendFrame(_ payload: Data, flags: UInt8, to buffer: inout ByteBuffer) {
    buffer.writeInteger(flags)
    buffer.writeInteger(UInt32(payload.count), endianness: .big)
    buffer.writeBytes(payload)
  }
}

/// Request headers that shape a streaming call.
struct StreamCallOptions: Sendable {
  /// `Keepalive-Ping-Interval` in seconds; envd's default is 90 s.
  var keepaliveInterval: Duration
  /// `Connect-Timeout-Ms`; nil means no deadline.
  var timeout: Duration?

  static let defaultKeepalive = Duration.seconds(90)

  /// Parses the headers; a malformed timeout is connect-go's `invalid_argument`.
  init(headers: HTTPFields) throws(ConnectError) {
    keepaliveInterval = Self.defaultKeepalive
    if let value = headers[HTTPField.Name("Keepalive-Ping-Interval")!],
      let seconds = Int64(value.trimmingCharacters(in: .whitespaces)), seconds > 0,
      seconds <= Int64.max / 1_000_000_000
    {
      keepaliveInterval = .seconds(seconds)
    }
    timeout = nil
    if let value = headers[HTTPField.Name("Connect-Timeout-Ms")!] {
      // connect-go accepts at most 10 ASCII digits.
      guard !value.isEmpty, value.count <= 10, value.allSatisfy(\.isASCIIDigit),
        let milliseconds = Int64(value)
      else {
        throw ConnectError(.invalidArgument, "protocol error: invalid timeout \"\(value)\"")
      }
      if milliseconds > 0 { timeout = .milliseconds(milliseconds) }
    }
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
