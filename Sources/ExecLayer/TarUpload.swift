import Backend
import CArchive
import CZlib
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Many files in one upload (Vercel's `fs/write` body, LangSmith's batches): a gzip-compressed
/// tar, built with libarchive into an unlinked temporary file (a tar header needs the size
/// first, and a transport may resend the body), then streamed.
public final class TarUpload: @unchecked Sendable {
  /// The archive; closed at deinit.
  public let descriptor: Int32
  public let length: Int64

  private init(descriptor: Int32, length: Int64) {
    self.descriptor = descriptor
    self.length = length
  }

  deinit { close(descriptor) }

  /// Where an entry's bytes come from.
  public enum Content: Sendable {
    /// `size` bytes of an open file (-1: none, size 0).
    case file(descriptor: Int32, size: Int64)
    case bytes([UInt8])
  }

  /// One regular file of the archive: `name` relative to `x-cwd`, with `mode`.
  public struct Entry: Sendable {
    public var name: String
    public var mode: UInt32
    public var content: Content

    public init(name: String, mode: UInt32, content: Content) {
      self.name = name
      self.mode = mode
      self.content = content
    }
  }

  /// An archive of one regular file. Blocking: call it off the cooperative pool.
  public static func make(
    name: String, mode: UInt32, source: Int32, size: Int64, temporaryFolder: String
  ) throws -> TarUpload {
    try make(
      [Entry(name: name, mode: mode, content: .file(descriptor: source, size: size))],
      temporaryFolder: temporaryFolder)
  }

  /// An archive of `entries`, each with exactly its bytes. Blocking: call it off the pool.
  public static func make(_ entries: [Entry], temporaryFolder: String) throws -> TarUpload {
    var template = Array((temporaryFolder + "/sandbox-mount-tar-XXXXXX").utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    let folder = "temporary file in \(temporaryFolder)"
    guard descriptor >= 0 else { throw LocalError(errno: errno, "mkstemp", folder) }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    var handed = false
    defer { if !handed { close(descriptor) } }

    guard let archive = archive_write_new() else {
      throw LocalError(errno: ENOMEM, "archive_write_new", folder)
    }
    defer { archive_write_free(archive) }
    func failure(_ call: String) -> LocalError {
      let text = archive_error_string(archive).map { String(cString: $0) }
      let code = archive_errno(archive)
      return LocalError(errno: code > 0 ? code : EIO, call, folder, detail: text)
    }
    // pax: names past 100 bytes and sizes past 8 GiB; gzip level 1 where it pays off, else 0
    // (stored blocks: random or compressed data costs no CPU).
    guard archive_write_set_format_pax_restricted(archive) == ARCHIVE_OK,
      archive_write_add_filter_gzip(archive) == ARCHIVE_OK,
      archive_write_set_filter_option(
        archive, "gzip", "compression-level", Self.paysOff(entries) ? "1" : "0") == ARCHIVE_OK,
      archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK,
      archive_write_open_fd(archive, descriptor) == ARCHIVE_OK
    else { throw failure("archive_write_open") }

    let chunk = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
    defer { buffer.deallocate() }
    for item in entries {
      guard let entry = archive_entry_new() else {
        throw LocalError(errno: ENOMEM, "archive_entry_new", folder)
      }
      defer { archive_entry_free(entry) }
      let size: Int64
      switch item.content {
      case .file(_, let length): size = length
      case .bytes(let bytes): size = Int64(bytes.count)
      }
      archive_entry_set_pathname_utf8(entry, item.name)
      archive_entry_set_filetype(entry, 0o100000)
      archive_entry_set_perm(entry, mode_t(item.mode & 0o7777))
      archive_entry_set_size(entry, la_int64_t(size))
      archive_entry_set_mtime(entry, time(nil), 0)
      guard archive_write_header(archive, entry) == ARCHIVE_OK else {
        throw failure("archive_write_header")
      }
      switch item.content {
      case .bytes(let bytes):
        let written = bytes.withUnsafeBytes {
          archive_write_data(archive, $0.baseAddress, $0.count)
        }
        guard written == bytes.count else { throw failure("archive_write_data") }
      case .file(let source, _):
        var offset: Int64 = 0
        while offset < size {
          let count = pread(source, buffer, Int(min(Int64(chunk), size - offset)), off_t(offset))
          if count < 0 && errno == EINTR { continue }
          guard count > 0 else {
            throw LocalError(
              errno: count < 0 ? errno : EIO, "read", "the file to upload",
              detail: count == 0 ? "it is shorter than its \(size) bytes" : nil)
          }
          guard archive_write_data(archive, buffer, count) == count else {
            throw failure("archive_write_data")
          }
          offset += Int64(count)
        }
      }
    }
    guard archive_write_close(archive) == ARCHIVE_OK else { throw failure("archive_write_close") }
    var info = stat()
    guard fstat(descriptor, &info) == 0 else { throw LocalError(errno: errno, "fstat", folder) }
    handed = true
    return TarUpload(descriptor: descriptor, length: Int64(info.st_size))
  }

  /// Whether gzip shrinks the data: the first 64 KiB of the first file (or the small files'
  /// bytes) compress below 90%.
  static func paysOff(_ entries: [Entry]) -> Bool {
    let sampleSize = 64 << 10
    var sample: [UInt8] = []
    for entry in entries where sample.count < sampleSize {
      switch entry.content {
      case .bytes(let bytes): sample += bytes.prefix(sampleSize - sample.count)
      case .file(let descriptor, let size):
        let wanted = Int(min(Int64(sampleSize - sample.count), size))
        guard wanted > 0 else { continue }
        var chunk = [UInt8](repeating: 0, count: wanted)
        let count = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, wanted, 0) }
        if count > 0 { sample += chunk.prefix(count) }
      }
    }
    guard sample.count >= 4096 else { return true }
    var compressedSize = compressBound(uLong(sample.count))
    var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
    let result = compressed.withUnsafeMutableBufferPointer { output in
      sample.withUnsafeBufferPointer { input in
        compress2(output.baseAddress, &compressedSize, input.baseAddress, uLong(input.count), 1)
      }
    }
    return result == Z_OK && Double(compressedSize) < Double(sample.count) * 0.9
  }

}

/// Runs blocking file work on a thread of its own, never on the cooperative pool.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { continuation in
    Thread { continuation.resume(with: Result { try work() }) }.start()
  }
}
