import Backend
import ExecLayer
import Foundation

/// Batches: `ExecBatch`, with the small files' bytes in ONE `fs/write` tar.
extension VercelBackend: ExecBatchBackend {
  public func stage(_ files: [ExecBatch.StagedFile]) async throws {
    let entries = files.map {
      TarUpload.Entry(
        name: String($0.path.drop { $0 == "/" }), mode: 0o600, content: .bytes($0.content))
    }
    try await post(try await archive(entries), context: "upload of \(entries.count) files")
  }
}
