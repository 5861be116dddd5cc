import Backend
import ExecLayer
import Foundation

/// Batches: `ExecBatch`, with the small files' bytes in ONE `fs/write` tar.
extension VercelBackend {
  /// Its commands act as one caller per call.
  public func applyBatch(_ changes: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await applyInRunsOfOneCaller(changes, callers: callers) { try await batch($0) }
  }

  public func applyBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await batch(changes)
  }

  private func batch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await batches.apply(changes) { uploads in try await upload(changes, to: uploads) }
  }

  /// Every put's bytes to its upload path (`uploads`, by index): one `fs/write`.
  private func upload(_ changes: [RemoteBatchChange], to uploads: [Int: String]) async throws {
    var entries: [TarUpload.Entry] = []
    for (index, change) in changes.enumerated() {
      guard case .put(_, let content, _, _, _) = change, let temporary = uploads[index] else {
        continue
      }
      entries.append(
        TarUpload.Entry(
          name: String(temporary.drop { $0 == "/" }), mode: 0o600, content: .bytes(content)))
    }
    guard !entries.isEmpty else { return }
    try await post(try await archive(entries), context: "upload of \(entries.count) files")
  }
}
