import Glibc
import Hummingbird
import NIOCore

/// Streams file contents into a response, reading on NIO's thread pool one chunk ahead of the
/// socket so disk and network overlap. Memory stays at about two chunks per response.
enum FileStreaming {
  static let chunkSize = 1 << 20

  struct ShortRead: Error {}

  /// Bytes already read at `start`, served instead of reading them again.
  struct Chunk: Sendable {
    var start: Int
    var bytes: ByteBuffer
  }

  /// Reads up to `count` bytes at `offset` (fewer only at end of file).
  static func read(_ fd: FileDescriptor, offset: Int, count: Int) throws -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: count)
    var total = 0
    while total < count {
      var failure: Int32 = 0
      let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { bytes in
        let wanted = min(bytes.count, count - total)
        var result: Int
        repeat {
          result = pread(fd.raw, bytes.baseAddress, wanted, off_t(offset + total))
        } while result < 0 && errno == EINTR
        if result < 0 {
          failure = errno
          return 0
        }
        return result
      }
      if failure != 0 { throw SystemError("read", "", code: failure) }
      if got == 0 { break }
      total += got
    }
    return buffer
  }

  /// Identity body for `length` bytes from `start`. A file that shrank meanwhile ends the
  /// response early with an error, which closes the connection (as Go's ServeContent does).
  static func identityBody(
    _ fd: FileDescriptor, start: Int, length: Int, firstChunk: Chunk? = nil,
    services: AgentServices
  ) -> ResponseBody {
    ResponseBody(contentLength: length) { writer in
      // Test switch, 0 in normal use: end the body early, as a cut connection would.
      let cut = min(length, TruncationFault.bytesToCut())
      let end = start + length - cut
      var offset = start
      var pending: Task<ByteBuffer, any Error>? = nil
      func readAhead(_ at: Int) -> Task<ByteBuffer, any Error>? {
        guard at < end else { return nil }
        let count = min(chunkSize, end - at)
        return Task { try await services.blocking { try read(fd, offset: at, count: count) } }
      }
      if let firstChunk, firstChunk.start == start, firstChunk.bytes.readableBytes == length {
        var bytes = firstChunk.bytes
        bytes.moveWriterIndex(to: bytes.readerIndex + (end - start))
        if bytes.readableBytes > 0 { try await writer.write(bytes) }
        if cut > 0 { throw ShortRead() }
        try await writer.finish(nil)
        return
      }
      pending = readAhead(offset)
      defer { pending?.cancel() }
      while let current = pending {
        let chunk = try await current.value
        guard chunk.readableBytes > 0 else { throw ShortRead() }
        offset += chunk.readableBytes
        pending = readAhead(offset)
        try await writer.write(chunk)
      }
      if cut > 0 { throw ShortRead() }
      try await writer.finish(nil)
    }
  }

  /// gzip body of the whole file, compressed on the thread pool as it is read; no length.
  static func gzipBody(_ fd: FileDescriptor, services: AgentServices) -> ResponseBody {
    ResponseBody { writer in
      let compressor = GzipCompressor()
      var offset = 0
      while true {
        let at = offset
        let (compressed, consumed) = try await services.blocking {
          let chunk = try read(fd, offset: at, count: chunkSize)
          let atEnd = chunk.readableBytes < chunkSize
          return (compressor.compress(chunk, finish: atEnd), atEnd ? -1 : chunk.readableBytes)
        }
        if compressed.readableBytes > 0 { try await writer.write(compressed) }
        if consumed < 0 { break }
        offset += consumed
      }
      try await writer.finish(nil)
    }
  }
}
