import Backend
import Logging

/// Where reads of files without a staging file go: `DirectFileReader` asks the backend for every
/// range; `PrefetchingReader` goes through the block cache and prefetches per open handle;
/// `WholeFileReader` downloads each file once, for backends without ranged reads.
public protocol FileReader: Sendable {
  /// Reads `length` bytes at `offset` of `path` for open `handle`, whose version (size and
  /// mtime) was taken before this read. The version's size is what truncation is checked
  /// against; a cache keys blocks by the whole version so a changed remote file never serves old
  /// bytes. `handle` lets a reader keep per-open state (its read pattern).
  /// The bytes may be a slice of a larger cached buffer: replied to the kernel without a copy.
  func read(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int, handle: UInt64
  ) async throws -> ArraySlice<UInt8>

  /// `handle` was closed: drop what was kept for it.
  func release(handle: UInt64)

  /// `path` is likely to be opened and read soon: fetch its start in the background, if this
  /// reader caches.
  func prefetchStart(of path: String, version: RemoteFileVersion)

  /// The mount ended: drop what is kept locally.
  func shutdown()
}

extension FileReader {
  public func shutdown() {}
}

/// The reader for a backend: through the block cache, prefetching, when it reads ranges
/// natively; else whole files, each downloaded once (`WholeFileReader`).
public func makeFileReader(
  backend: any RemoteFilesystem, capabilities: RemoteCapabilities,
  blockCache: BlockCacheConfiguration, wholeFiles: WholeFileConfiguration, logger: Logger
) throws -> any FileReader {
  guard capabilities.rangedReads else {
    return try WholeFileReader(backend: backend, configuration: wholeFiles, logger: logger)
  }
  let cache = try BlockCache(backend: backend, configuration: blockCache, logger: logger)
  return PrefetchingReader(cache: cache, backend: backend)
}

/// One ranged request per read, checked by the backend against the size taken at open.
public struct DirectFileReader: FileReader {
  private let backend: any RemoteFilesystem

  public init(backend: any RemoteFilesystem) {
    self.backend = backend
  }

  public func read(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int, handle: UInt64
  ) async throws -> ArraySlice<UInt8> {
    ArraySlice(
      try await backend.read(path, offset: offset, length: length, expectedSize: version.size))
  }

  public func release(handle: UInt64) {}

  public func prefetchStart(of path: String, version: RemoteFileVersion) {}
}
