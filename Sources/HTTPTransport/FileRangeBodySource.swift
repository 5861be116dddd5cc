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
