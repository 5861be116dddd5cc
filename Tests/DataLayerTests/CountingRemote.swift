import Backend
import DataLayer
import Glibc
import Synchronization

/// An in-memory `RemoteFilesystem` that counts reads, for the pure cache logic only: call counts
/// and single flight cannot be observed through a real agent. Everything else is tested through
/// the agent (MountTests).
final class CountingRemote: RemoteFilesystem {
  struct State {
    var files: [String: [UInt8]] = [:]
    var reads: [(path: String, offset: UInt64, length: Int)] = []
    var downloads: [String] = []
    /// Reads that fail with EIO before any succeeds.
    var failuresToInject = 0
    /// Bytes cut from every answer (a backend breaking its contract), while > 0.
    var shortBy = 0
  }

  let state = Mutex(State())
  /// How long each read takes, so concurrent readers overlap.
  let delay: Duration

  init(files: [String: [UInt8]] = [:], delay: Duration = .zero) {
    self.delay = delay
    state.withLock { $0.files = files }
  }

  var readCount: Int { state.withLock { $0.reads.count } }
  var downloadCount: Int { state.withLock { $0.downloads.count } }

  /// The blocks the reads of `path` asked for (a read may cover several).
  func fetchedBlocks(of path: String, blockSize: Int) -> Set<Int> {
    state.withLock { state in
      var blocks = Set<Int>()
      for read in state.reads where read.path == path {
        let first = Int(read.offset) / blockSize
        blocks.formUnion(first..<(first + max(1, read.length / blockSize)))
      }
      return blocks
    }
  }
  func reads(of path: String) -> Int {
    state.withLock { $0.reads.filter { $0.path == path }.count }
  }

  func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    if delay > .zero { try await Task.sleep(for: delay) }
    return try state.withLock { state in
      state.reads.append((path, offset, length))
      if state.failuresToInject > 0 {
        state.failuresToInject -= 1
        throw RemoteError(errno: EIO, "injected failure")
      }
      guard let content = state.files[path] else { throw RemoteError(errno: ENOENT, path) }
      guard offset < content.count else { return [] }
      let end = min(content.count, Int(offset) + length)
      return Array(content[Int(offset)..<max(Int(offset), end - state.shortBy)])
    }
  }

  func attributes(of path: String) async throws -> RemoteAttributes { throw unsupported }
  func listDirectory(_ path: String) async throws -> [RemoteEntry] { throw unsupported }
  /// Writes the whole file, unchecked: a short body (`shortBy`) is the caller's to catch. An
  /// injected failure breaks off after half the file is written, as a cut stream does.
  func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws -> UInt64 {
    if delay > .zero { try await Task.sleep(for: delay) }
    let (bytes, broken) = try state.withLock { state in
      state.downloads.append(path)
      guard let content = state.files[path] else { throw RemoteError(errno: ENOENT, path) }
      if state.failuresToInject > 0 {
        state.failuresToInject -= 1
        return (Array(content.prefix(content.count / 2)), true)
      }
      return (Array(content.dropLast(state.shortBy)), false)
    }
    let descriptor = open(localPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard descriptor >= 0 else { throw RemoteError(errno: errno, "cannot open \(localPath)") }
    defer { close(descriptor) }
    guard bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count
    else { throw RemoteError(errno: EIO, "cannot write \(localPath)") }
    if broken { throw RemoteError(errno: EIO, "injected failure after \(bytes.count) bytes") }
    return UInt64(bytes.count)
  }
  func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    throw unsupported
  }
  func makeDirectory(_ path: String, mode: UInt32) async throws { throw unsupported }
  func removeFile(_ path: String) async throws -> RemoteAttributes? { throw unsupported }
  func removeDirectory(_ path: String) async throws -> RemoteAttributes? { throw unsupported }
  func rename(from source: String, to destination: String) async throws { throw unsupported }
  func filesystemStatistics() async throws -> RemoteFilesystemStatistics { throw unsupported }

  private var unsupported: RemoteError { RemoteError(errno: ENOSYS, "not part of the cache tests") }
}

/// Deterministic bytes that differ per offset and per seed.
func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8 &+ Int(seed) &* 7) }
}

func version(_ size: Int, mtime: Int64 = 1_700_000_000, nanoseconds: Int32 = 5) -> RemoteFileVersion
{
  RemoteFileVersion(
    size: UInt64(size), modificationTime: RemoteTime(seconds: mtime, nanoseconds: nanoseconds))
}

// Tests compare plain arrays; the cache hands out slices of its buffers.
extension BlockCache {
  func bytes(_ key: BlockKey) async throws -> [UInt8] { Array(try await block(key)) }
}

extension FileReader {
  func bytes(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int, handle: UInt64
  ) async throws -> [UInt8] {
    Array(try await read(path, version: version, offset: offset, length: length, handle: handle))
  }
}
