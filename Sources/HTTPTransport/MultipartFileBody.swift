import Backend
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A `multipart/form-data` body of one file part, streamed from an open file (never held in
/// memory): the form's head, the file's bytes, its tail.
public final class MultipartFileBody: RequestBodySource {
  public let contentType: String
  public let length: Int64?
  public private(set) var failure: String?
  private let head: [UInt8]
  private let tail: [UInt8]
  private let descriptor: Int32
  private let fileSize: Int64
  private var position: Int64 = 0

  /// `descriptor` stays the caller's to close, after the transfer.
  public init(
    field: String, fileName: String, descriptor: Int32, size: Int64,
    fileType: String = "application/octet-stream"
  ) {
    let boundary = "sandbox-mount-" + UUID().uuidString
    contentType = "multipart/form-data; boundary=\(boundary)"
    head = Array(
      ("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(fileName)\"\r\n"
        + "Content-Type: \(fileType)\r\n\r\n").utf8)
    tail = Array("\r\n--\(boundary)--\r\n".utf8)
    self.descriptor = descriptor
    fileSize = size
    length = Int64(head.count) + size + Int64(tail.count)
  }

  public func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int? {
    let headEnd = Int64(head.count)
    let fileEnd = headEnd + fileSize
    if position < headEnd {
      return copy(head, from: Int(position), into: buffer, capacity: capacity)
    }
    if position < fileEnd {
      let wanted = Int(min(Int64(capacity), fileEnd - position))
      while true {
        let count = pread(descriptor, buffer, wanted, off_t(position - headEnd))
        if count > 0 {
          position += Int64(count)
          return count
        }
        if count == 0 {
          failure = "the file shrank while it was sent"
          return nil
        }
        if errno == EINTR { continue }
        failure = "reading the file: \(String(cString: strerror(errno)))"
        return nil
      }
    }
    return copy(tail, from: Int(position - fileEnd), into: buffer, capacity: capacity)
  }

  private func copy(
    _ bytes: [UInt8], from start: Int, into buffer: UnsafeMutableRawPointer, capacity: Int
  ) -> Int {
    let count = min(capacity, bytes.count - start)
    guard count > 0 else { return 0 }
    bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + start, byteCount: count) }
    position += Int64(count)
    return count
  }

  public func rewind() -> Bool {
    position = 0
    return true
  }
}
