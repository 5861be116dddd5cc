import Backend
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Local file work for transfers, each call on a thread of its own: never on the cooperative
/// pool. Calls move a megabyte or more, so a thread per call costs little beside them.
enum LocalFile {
  static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws
    -> T
  {
    try await withCheckedThrowingContinuation { continuation in
      Thread { continuation.resume(with: Result { try work() }) }.start()
    }
  }

  /// `count` bytes at `offset`; a shorter file is EIO (it changed under the upload).
  static func read(_ descriptor: Int32, offset: Int64, count: Int) async throws -> Data {
    try await onOwnThread {
      var data = Data(count: count)
      var done = 0
      while done < count {
        let got = data.withUnsafeMutableBytes {
          pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done))
        }
        if got < 0, errno == EINTR { continue }
        guard got > 0 else {
          throw LocalError(
            errno: got < 0 ? errno : EIO, "read for an upload", "fd \(descriptor)",
            detail: got < 0 ? nil : "the file is shorter than when the upload began")
        }
        done += got
      }
      return data
    }
  }

  /// The whole file at `path` (nil: empty), for a `WriteFile`.
  static func contents(of descriptor: Int32, size: Int64) async throws -> Data {
    size == 0 ? Data() : try await read(descriptor, offset: 0, count: Int(size))
  }

  /// Writes all of `chunks` at the end of `descriptor`.
  static func append(_ chunks: [Data], to descriptor: Int32, path: String) async throws {
    try await onOwnThread {
      for chunk in chunks {
        try chunk.withUnsafeBytes { buffer in
          var done = 0
          while done < buffer.count {
            let wrote = write(descriptor, buffer.baseAddress! + done, buffer.count - done)
            if wrote < 0, errno == EINTR { continue }
            guard wrote > 0 else { throw LocalError(errno: errno, "write", path) }
            done += wrote
          }
        }
      }
    }
  }

  static func create(_ path: String) async throws -> Int32 {
    try await onOwnThread {
      let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
      guard descriptor >= 0 else { throw LocalError(errno: errno, "open", path) }
      return descriptor
    }
  }

  /// Empties the local file (after a failed download: nothing short is left to be served), and
  /// the next write starts at 0.
  static func truncate(_ descriptor: Int32) async {
    _ = try? await onOwnThread {
      _ = ftruncate(descriptor, 0)
      _ = lseek(descriptor, 0, SEEK_SET)
    }
  }

  static func close(_ descriptor: Int32) async {
    _ = try? await onOwnThread { Glibc.close(descriptor) }
  }
}

/// Stdout chunks gathered up to `limit` bytes; more is EIO.
final class OutputBuffer: Sendable {
  private let bytes = Mutex<[UInt8]>([])
  private let limit: Int
  private let context: String

  init(limit: Int, context: String, reserve: Int = 0) {
    self.limit = limit
    self.context = context
    if reserve > 0 { bytes.withLock { $0.reserveCapacity(min(reserve, limit)) } }
  }

  func append(_ data: Data) throws {
    try bytes.withLock { bytes in
      guard bytes.count + data.count <= limit else {
        throw RemoteError(errno: EIO, "\(context): more than \(limit) bytes of output")
      }
      bytes += data
    }
  }

  var contents: [UInt8] { bytes.withLock { $0 } }
}

/// Stdout streamed into a local file: chunks gathered up to `flushSize`, then written on a
/// thread of their own while the stream waits (backpressure), never the whole file in memory.
final class FileSink: Sendable {
  private struct State {
    var pending: [Data] = []
    var pendingBytes = 0
    var written: UInt64 = 0
  }
  private let state = Mutex(State())
  let descriptor: Int32
  let path: String
  static let flushSize = 4 << 20

  init(descriptor: Int32, path: String) {
    self.descriptor = descriptor
    self.path = path
  }

  func append(_ data: Data) async throws {
    let full = state.withLock { state -> [Data]? in
      state.pending.append(data)
      state.pendingBytes += data.count
      guard state.pendingBytes >= Self.flushSize else { return nil }
      defer {
        state.pending = []
        state.pendingBytes = 0
      }
      return state.pending
    }
    if let full { try await write(full) }
  }

  func finish() async throws -> UInt64 {
    let rest = state.withLock { state -> [Data] in
      defer {
        state.pending = []
        state.pendingBytes = 0
      }
      return state.pending
    }
    if !rest.isEmpty { try await write(rest) }
    return state.withLock { $0.written }
  }

  private func write(_ chunks: [Data]) async throws {
    try await LocalFile.append(chunks, to: descriptor, path: path)
    let count = chunks.reduce(0) { $0 + $1.count }
    state.withLock { $0.written += UInt64(count) }
  }
}
