import Backend
import ExecLayer
import Foundation

/// Batches: `ExecBatch`, with the small files' bytes in ONE `/upload` of a tar that one command
/// unpacks beside their targets (LangSmith's `/upload` takes one file per request).
extension LangSmithBackend {
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

  /// Every put's bytes to its upload path (`uploads`, by index).
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
    guard let first = uploads.values.min() else { return }
    let context = "upload of \(entries.count) files"
    let folder = temporaryFolder
    let files = entries
    let archive = try await onOwnThread { try TarUpload.make(files, temporaryFolder: folder) }
    // Beside the first file: a folder the batch writes to anyway.
    let archivePath =
      RemotePath.join(RemotePath.parent(of: first), ".sandbox-mount-batch-\(UUID().uuidString).tgz")
    try await post(
      descriptor: archive.descriptor, size: archive.length, to: archivePath, context: context)
    let unpack = ProcessCommand(
      "/bin/sh",
      [
        // Sandbox paths are under `$SANDBOX_ROOT` where sandbox-agent serves a folder.
        "-c",
        "R=${SANDBOX_ROOT:-}; tar -xzf \"$R$1\" -C \"$R/\" --no-same-owner; status=$?; rm -f \"$R$1\"; exit $status",
        "sh", archivePath,
      ])
    let outcome = try await exec.runner.executor.run(unpack)
    guard outcome.exitCode == 0 else {
      let detail = String(decoding: outcome.stderr.prefix(500), as: UTF8.self)
      throw RemoteError(errno: EIO, "\(context): tar in the sandbox: \(outcome.status): \(detail)")
    }
  }
}
