import NIOCore

/// One Connect streaming frame: `[flags:1][length:uint32 big-endian][payload]` (protocol doc §5.2).
public struct Envelope: Sendable, Equatable {
  public static let compressedFlag: UInt8 = 0x01
  public static let endStreamFlag: UInt8 = 0x02
  public static let prefixLength = 5

  public var flags: UInt8
  public var payload: ByteBuffer

  public init(flags: UInt8 = 0, payload: ByteBuffer) {
    self.flags = flags
    self.payload = payload
  }

  public var isCompressed: Bool { flags & Self.compressedFlag != 0 }
  public var isEndStream: Bool { flags & Self.endStreamFlag != 0 }

  /// The frame as bytes on the wire.
  public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
    var buffer = allocator.buffer(capacity: Self.prefixLength + payload.readableBytes)
    buffer.writeInteger(flags)
    buffer.writeInteger(UInt32(payload.readableBytes), endianness: .big)
    buffer.writeImmutableBuffer(payload)
    return buffer
  }
}

/// Splits a byte stream into envelopes, however the bytes were chunked on the way in.
public struct EnvelopeParser: Sendable {
  /// Frames larger than this are refused rather than buffered (connect-go's `readMaxBytes`).
  public let maxPayloadBytes: Int
  private var pending = ByteBuffer()

  public init(maxPayloadBytes: Int = 16 * 1024 * 1024) {
    self.maxPayloadBytes = maxPayloadBytes
  }

  public enum ParseError: Error, Equatable {
    /// The declared length exceeds `maxPayloadBytes`.
    case tooLarge(declared: Int, limit: Int)
  }

  /// Bytes received but not yet returned as a whole envelope.
  public var bufferedBytes: Int { pending.readableBytes }

  public mutating func append(_ bytes: ByteBuffer) {
    var bytes = bytes
    pending.writeBuffer(&bytes)
  }

  /// The next complete envelope, or nil until more bytes arrive.
  public mutating func next() throws(ParseError) -> Envelope? {
    guard pending.readableBytes >= Envelope.prefixLength,
      let flags = pending.getInteger(at: pending.readerIndex, as: UInt8.self),
      let length = pending.getInteger(
        at: pending.readerIndex + 1, endianness: .big, as: UInt32.self)
    else { return nil }
    let size = Int(length)
    guard size <= maxPayloadBytes else {
      throw .tooLarge(declared: size, limit: maxPayloadBytes)
    }
    guard pending.readableBytes >= Envelope.prefixLength + size else { return nil }
    pending.moveReaderIndex(forwardBy: Envelope.prefixLength)
    let payload = pending.readSlice(length: size)!
    // Drop consumed bytes now and then so a long stream does not grow the buffer forever.
    if pending.readerIndex > 64 * 1024 { pending.discardReadBytes() }
    return Envelope(flags: flags, payload: payload)
  }

  /// When the input has ended: nil if it ended on a frame boundary, else what a partial frame
  /// promised and got, for connect-go's "incomplete envelope" / "promised N bytes" errors.
  public var truncation: (prefixBytes: Int, promised: Int?, got: Int)? {
    let available = pending.readableBytes
    guard available > 0 else { return nil }
    guard available >= Envelope.prefixLength,
      let length = pending.getInteger(
        at: pending.readerIndex + 1, endianness: .big, as: UInt32.self)
    else { return (available, nil, 0) }
    return (Envelope.prefixLength, Int(length), available - Envelope.prefixLength)
  }
}
