import Backend

/// Where reads of files without a staging file go. The direct reader below asks the backend for
/// every range; the block cache and prefetcher (a later issue) implement this same protocol.
public protocol FileReader: Sendable {
  /// Reads `length` bytes at `offset` of `path`, whose version (size and mtime) was taken before
  /// this read. The version's size is what truncation is checked against; a cache keys blocks
  /// by the whole version so a changed remote file never serves old bytes.
  func read(_ path: String, version: RemoteFileVersion, offset: UInt64, length: Int) async throws
    -> [UInt8]
}

/// One ranged request per read, checked by the backend against the size taken at open.
public struct DirectFileReader: FileReader {
  private let backend: any RemoteFilesystem

  public init(backend: any RemoteFilesystem) {
    self.backend = backend
  }

  public func read(_ path: String, version: RemoteFileVersion, offset: UInt64, length: Int)
    async throws -> [UInt8]
  {
    try await backend.read(path, offset: offset, length: length, expectedSize: version.size)
  }
}
