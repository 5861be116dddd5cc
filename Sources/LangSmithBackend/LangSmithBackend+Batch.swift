import Backend
import ExecLayer
import Foundation

/// Batches: `ExecBatch`, with the small files' bytes in ONE `/upload` of a tar that one command
/// unpacks beside their targets (LangSmith's `/upload` takes one file per request).
extension LangSmithBackend: ExecBatchBackend {
  public func stage(_ files: [ExecBatch.StagedFile]) async throws {
    let entries = files.map {
      TarUpload.Entry(
        name: String($0.path.drop { $0 == "/" }), mode: 0o600, content: .bytes($0.content))
    }
    let context = "upload of \(entries.count) files"
    let folder = temporaryFolder
    let archive = try await onOwnThread { try TarUpload.make(entries, temporaryFolder: folder) }
    // Beside the first file: a folder the batch writes to anyway.
    let archivePath = RemotePath.join(
      RemotePath.parent(of: files[0].path), ".sandbox-mount-batch-\(UUID().uuidString).tgz")
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
