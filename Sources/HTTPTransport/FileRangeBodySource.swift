#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Streams `length` bytes of a local file from `offset` (a changed range of a staged file, or a
/// whole prepared archive); a file shorter than that fails the request.
public final class FileRangeBodySource: RequestBodySource {
  private let descriptor: Int32
  private let offset: Int64
  public let length: Int64?
  private var position: Int64 = 0
  public private(set) var failure: String?

  public init(descriptor: Int32, offset: Int64, length: Int64) {
    self.descriptor = descriptor
    self.offset = offset
    self.length = length
  }

  public func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int? {
    let wanted = min(Int64(capacity), (length ?? 0) - position)
    guard wanted > 0 else { return 0 }
    while true {
      let count = pread(descriptor, buffer, Int(wanted), off_t(offset + position))
      if count > 0 {
        position += Int64(count)
        return count
      }
      if count < 0 && errno == EINTR { continue }
      failure =
        count == 0
        ? "the local file is shorter than its changes"
        : "reading the local file: \(String(cString: strerror(errno)))"
      return nil
    }
  }

  public func rewind() -> Bool {
    position = 0
    return true
  }
}

extension RequestBody {
  /// Bodies up to this size are read into memory before the request starts.
  public static let inMemoryLimit: Int64 = 64 << 10

  /// `length` bytes of a local file from `offset`. A small range goes in memory, so libcurl
  /// sends it with the headers in one segment: a streamed body is a second send, which can
  /// cost the server a second wakeup. A range the file cannot fill is streamed, whose read
  /// then fails the request as it would have.
  public static func fileRange(descriptor: Int32, offset: Int64, length: Int64) -> RequestBody {
    let source = FileRangeBodySource(descriptor: descriptor, offset: offset, length: length)
    guard length > 0, length <= inMemoryLimit else { return .stream(source) }
    var bytes = [UInt8](repeating: 0, count: Int(length))
    var done = 0
    while done < bytes.count {
      let count = bytes.withUnsafeMutableBytes { buffer in
        source.read(into: buffer.baseAddress! + done, capacity: buffer.count - done)
      }
      guard let count, count > 0 else {
        _ = source.rewind()
        return .stream(source)
      }
      done += count
    }
    return .bytes(bytes)
  }
}
