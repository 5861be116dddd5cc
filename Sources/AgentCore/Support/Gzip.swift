import CZlib
import NIOCore

/// Streaming gzip compression with zlib. One instance per response; it is only ever used by
/// one task at a time (handed between the thread pool and the writer), hence `@unchecked`.
final class GzipCompressor: @unchecked Sendable {
  private var stream = z_stream()

  /// Level 1: a streaming server on few cores is CPU-bound long before the network is.
  init(level: Int32 = 1) {
    let status = sandbox_deflate_init_gzip(&stream, level)
    precondition(status == Z_OK, "deflateInit2 failed: \(status)")
  }

  deinit { deflateEnd(&stream) }

  /// Compresses `input`; with `finish`, also writes the gzip trailer.
  func compress(_ input: ByteBuffer, finish: Bool) -> ByteBuffer {
    var output = ByteBuffer()
    output.reserveCapacity(max(input.readableBytes / 2, 4096))
    input.withUnsafeReadableBytes { inputBytes in
      stream.next_in = UnsafeMutablePointer(
        mutating: inputBytes.bindMemory(to: Bytef.self).baseAddress)
      stream.avail_in = uInt(inputBytes.count)
      while true {
        if output.writableBytes < 4096 { output.reserveCapacity(output.capacity * 2) }
        var status: Int32 = Z_OK
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: 4096) { outputBytes in
          stream.next_out = outputBytes.bindMemory(to: Bytef.self).baseAddress
          stream.avail_out = uInt(outputBytes.count)
          status = deflate(&stream, finish ? Z_FINISH : Z_NO_FLUSH)
          return outputBytes.count - Int(stream.avail_out)
        }
        if finish ? status == Z_STREAM_END : (stream.avail_in == 0 && stream.avail_out != 0) {
          break
        }
      }
      stream.next_in = nil
    }
    return output
  }
}

/// Streaming gzip decompression with zlib; accepts concatenated members like Go's gzip.Reader.
final class GzipDecompressor: @unchecked Sendable {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  private var stream = z_stream()
  /// True between members: the last member ended exactly at the end of the input so far.
  private(set) var atMemberEnd = false
  private var sawInput = false

  init() {
    let status = sandbox_inflate_init_auto(&stream)
    precondition(status == Z_OK, "inflateInit2 failed: \(status)")
  }

  deinit { inflateEnd(&stream) }

  /// Decompresses `input`, handing each piece of output (at most 64 KiB) to `emit` as it comes.
  func decompress(_ input: ByteBuffer, emit: (ByteBuffer) throws -> Void) throws {
    guard input.readableBytes > 0 else { return }
    sawInput = true
    defer {
      stream.next_in = nil
      stream.avail_in = 0
    }
    try input.withUnsafeReadableBytes { inputBytes in
      stream.next_in = UnsafeMutablePointer(
        mutating: inputBytes.bindMemory(to: Bytef.self).baseAddress)
      stream.avail_in = uInt(inputBytes.count)
      while stream.avail_in > 0 {
        if atMemberEnd {
          inflateReset(&stream)
          atMemberEnd = false
        }
        var output = ByteBuffer()
        var status: Int32 = Z_OK
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 * 1024) { outputBytes in
          stream.next_out = outputBytes.bindMemory(to: Bytef.self).baseAddress
          stream.avail_out = uInt(outputBytes.count)
          status = inflate(&stream, Z_NO_FLUSH)
          return outputBytes.count - Int(stream.avail_out)
        }
        if output.readableBytes > 0 { try emit(output) }
        if status == Z_STREAM_END {
          atMemberEnd = true
        } else if status == Z_BUF_ERROR && output.readableBytes == 0 {
          break
        } else if status != Z_OK {
          let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
          throw Failure(description: "gzip: \(reason)")
        }
      }
    }
  }

  /// Call at the end of the body: a stream cut short is Go's "unexpected EOF".
  func finish() throws {
    if sawInput && !atMemberEnd { throw Failure(description: "unexpected EOF") }
    if !sawInput { throw Failure(description: "EOF") }
  }
}
