import CZlib
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Streams a local file as the request body, read as curl asks (on curl's thread).
final class FileBodySource: RequestBodySource {
  private let descriptor: Int32
  let length: Int64?
  private(set) var failure: String?

  init(descriptor: Int32, length: Int64) {
    self.descriptor = descriptor
    self.length = length
  }

  func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int? {
    while true {
      let count = Glibc.read(descriptor, buffer, capacity)
      if count >= 0 { return count }
      if errno == EINTR { continue }
      failure = "reading the local file: \(String(cString: strerror(errno)))"
      return nil
    }
  }

  func rewind() -> Bool { lseek(descriptor, 0, SEEK_SET) == 0 }
}

/// zlib could not start a gzip stream (the upload then goes uncompressed).
struct DeflateSetupError: Error {}

/// Streams a local file gzip-compressed through zlib, a chunk at a time (length unknown, so the
/// body goes chunked).
final class GzipFileBodySource: RequestBodySource {
  private let descriptor: Int32
  private let level: Int32
  // zlib keeps a back-pointer to the z_stream, so it needs a stable address.
  private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
  private let input: UnsafeMutablePointer<UInt8>
  private static let inputCapacity = 256 << 10
  private var inputEnded = false
  private var finished = false
  private(set) var failure: String?

  var length: Int64? { nil }

  init(descriptor: Int32, level: Int32 = 1) throws {
    self.descriptor = descriptor
    self.level = level
    input = .allocate(capacity: Self.inputCapacity)
    stream.initialize(to: z_stream())
    guard sandbox_deflate_init_gzip(stream, level) == Z_OK else {
      input.deallocate()
      stream.deallocate()
      throw DeflateSetupError()
    }
  }

  deinit {
    deflateEnd(stream)
    stream.deallocate()
    input.deallocate()
  }

  func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int? {
    guard !finished else { return 0 }
    stream.pointee.next_out = buffer.assumingMemoryBound(to: Bytef.self)
    stream.pointee.avail_out = UInt32(clamping: capacity)
    while stream.pointee.avail_out > 0 {
      if stream.pointee.avail_in == 0, !inputEnded {
        let count = Glibc.read(descriptor, input, Self.inputCapacity)
        if count < 0 {
          if errno == EINTR { continue }
          failure = "reading the local file: \(String(cString: strerror(errno)))"
          return nil
        }
        inputEnded = count == 0
        stream.pointee.next_in = input
        stream.pointee.avail_in = UInt32(count)
      }
      let result = deflate(stream, inputEnded ? Z_FINISH : Z_NO_FLUSH)
      if result == Z_STREAM_END {
        finished = true
        break
      }
      guard result == Z_OK || result == Z_BUF_ERROR else {
        failure = "gzip compression failed (zlib \(result))"
        return nil
      }
    }
    return capacity - Int(stream.pointee.avail_out)
  }

  func rewind() -> Bool {
    guard lseek(descriptor, 0, SEEK_SET) == 0, deflateReset(stream) == Z_OK else { return false }
    stream.pointee.avail_in = 0
    inputEnded = false
    finished = false
    return true
  }

  /// Whether gzip pays off: the file is at least `sampleSize` long and its first `sampleSize`
  /// bytes compress below `ratio` of their size. Reads with pread, so the offset is unchanged.
  static func paysOff(
    descriptor: Int32, size: Int64, sampleSize: Int = 64 << 10, ratio: Double = 0.9
  )
    -> Bool
  {
    guard size >= Int64(sampleSize) else { return false }
    var sample = [UInt8](repeating: 0, count: sampleSize)
    let count = sample.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, sampleSize, 0) }
    guard count > 0 else { return false }
    var compressedSize = compressBound(uLong(count))
    var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
    let result = compressed.withUnsafeMutableBufferPointer { output in
      sample.withUnsafeBufferPointer { input in
        compress2(output.baseAddress, &compressedSize, input.baseAddress, uLong(count), 1)
      }
    }
    return result == Z_OK && Double(compressedSize) < Double(count) * ratio
  }
}
