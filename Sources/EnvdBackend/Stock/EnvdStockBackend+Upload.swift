import Backend
import ExecLayer
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Uploads to a temporary name and a process that renames it over the target; ranges in place.
extension EnvdStockBackend {
  /// Replaces the file with the local file's content, streamed; see `EnvdConnection.upload`.
  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    try await connection.upload(path, from: localPath) { descriptor, size in
      try await connection.stockUpload(path, descriptor: descriptor, size: size)
    }
  }

  /// See `EnvdConnection.stockWriteRanges`.
  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await connection.withLocalFile(localPath, context: "write \(path)") { descriptor in
      try await connection.stockWriteRanges(
        path, descriptor: descriptor, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
  }
}
