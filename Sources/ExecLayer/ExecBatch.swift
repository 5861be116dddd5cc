import Backend
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Batches for a backend whose changes go through the exec layer (stock envd, Vercel): the
/// small files' bytes go first, in ONE request of the backend's own (`upload`), each to a fixed
/// name beside its target; then one command per 64 changes applies everything in order (a put
/// is a check of its size and a rename over the target, with its mode and times). A command
/// before them reads the folders' mtimes, which the puts put back. So a drained rsync costs
/// three requests per batch, not five per file.
public final class ExecBatch: Sendable {
  private let exec: ExecFilesystem
  /// Uploads of a batch whose commands never ran (the sandbox went away): the next batch
  /// removes them.
  private let orphanedUploads = Mutex<Set<String>>([])

  public init(exec: ExecFilesystem) {
    self.exec = exec
  }

  /// One put's bytes and the sandbox path they go to first, beside the put's target.
  public struct StagedFile: Sendable {
    public let path: String
    public let content: [UInt8]
  }

  /// Applies `changes` in order, each answered on its own. `upload` sends every put's bytes
  /// to its sandbox path, in as few requests as the backend's API allows.
  public func apply(
    _ changes: [RemoteBatchChange],
    upload: (_ files: [StagedFile]) async throws -> Void
  ) async throws -> [Result<RemoteAttributes?, RemoteError>] {
    let orphans = orphanedUploads.withLock { orphans in
      defer { orphans = [] }
      return orphans
    }
    var uploads: [Int: String] = [:]
    for (index, change) in changes.enumerated() {
      if case .put(let path, _, _, _, _) = change { uploads[index] = uploadPath(for: path) }
    }
    let folderTimes = try await modificationTimes(
      of: Set(uploads.keys.map { RemotePath.parent(of: changes[$0].path) }))
    var files: [StagedFile] = []
    for (index, change) in changes.enumerated() {
      if case .put(_, let content, _, _, _) = change, let path = uploads[index] {
        files.append(StagedFile(path: path, content: content))
      }
    }
    do {
      if !files.isEmpty { try await upload(files) }
    } catch {
      // A cut upload may have left some of them.
      orphanedUploads.withLock { $0.formUnion(orphans.union(uploads.values)) }
      throw error
    }
    // An orphan this batch uploads again is consumed by its put instead.
    let discarded = orphans.subtracting(uploads.values).sorted()
    var jobs: [(path: String, steps: [ExecScript.Step])] = discarded.map { ($0, [.discard]) }
    for (index, change) in changes.enumerated() {
      jobs.append(
        (
          exec.sandboxPath(change.path),
          ExecScript.asCaller()
            + Self.steps(
              for: change, upload: uploads[index],
              folderTime: folderTimes[RemotePath.parent(of: change.path)])
        ))
    }
    var results: [Result<RemoteAttributes?, RemoteError>] = []
    var start = 0
    while start < jobs.count {
      let chunk = Array(jobs[start..<min(start + ExecRunner.batchLimit, jobs.count)])
      let outcome: ProcessOutcome
      do {
        outcome = try await exec.runner.executor.run(
          ProcessCommand("/bin/sh", ExecScript.arguments(for: chunk)))
      } catch {
        // What was uploaded for the changes not applied would stay beside their targets.
        let pending = Set(discarded).union(
          uploads.filter { $0.key + discarded.count >= start }.map(\.value))
        orphanedUploads.withLock { $0.formUnion(pending) }
        throw error
      }
      let answers = ExecOutput.results(outcome.stdout, jobs: chunk.count)
      for (offset, answer) in answers.enumerated() where start + offset >= discarded.count {
        let change = changes[start + offset - discarded.count]
        results.append(Self.result(of: answer, for: change, outcome: outcome))
      }
      start += chunk.count
    }
    return results
  }

  /// A put's bytes go first to this sandbox path beside its target. One name per target, not
  /// a random one: a batch cut after its upload is sent again, and its retry overwrites and
  /// then consumes the same file.
  private func uploadPath(for path: String) -> String {
    let name = String(RemotePath.name(of: path).prefix(200))
    return exec.sandboxPath(
      RemotePath.join(RemotePath.parent(of: path), ".\(name).sandbox-mount-batch"))
  }

  /// The folders' mtimes before the upload, which leaves a file in each: a put puts its
  /// folder's back, as writing a file does not change its folder. (A folder that gained an
  /// entry has a change of its own, applied after the files.)
  private func modificationTimes(of folders: Set<String>) async throws -> [String: RemoteTime] {
    guard !folders.isEmpty else { return [:] }
    let ordered = folders.sorted()
    var times: [String: RemoteTime] = [:]
    var start = 0
    while start < ordered.count {
      let chunk = Array(ordered[start..<min(start + ExecRunner.batchLimit, ordered.count)])
      let outcome = try await exec.runner.executor.run(
        ProcessCommand(
          "/bin/sh", ExecScript.arguments(for: chunk.map { (exec.sandboxPath($0), [.stat]) })))
      for (folder, answer) in zip(chunk, ExecOutput.results(outcome.stdout, jobs: chunk.count)) {
        if let line = answer.stat, let attributes = ExecOutput.attributes(statLine: line) {
          times[folder] = attributes.modificationTime
        }
      }
      start += chunk.count
    }
    return times
  }

  private static func steps(for change: RemoteBatchChange, upload: String?, folderTime: RemoteTime?)
    -> [ExecScript.Step]
  {
    switch change {
    case .makeDirectory(_, let mode):
      return [.makeDirectory(mode: mode), .stat]
    case .put(_, let content, let mode, let changes, let expected):
      guard let upload else { return [] }
      var steps: [ExecScript.Step] = []
      if let expected { steps.append(.expect(expected, upload: upload)) }
      steps.append(
        .replace(from: upload, size: UInt64(content.count), directoryTime: folderTime))
      var attributes = changes
      attributes.mode = mode
      attributes.size = nil
      return steps + ExecScript.steps(for: attributes)
    case .setAttributes(_, let changes):
      return ExecScript.steps(for: changes)
    case .removeFile:
      return [.unlink]
    case .removeDirectory:
      return [.removeDirectory]
    case .symlink(_, let target):
      return [.symlink(target: target), .stat]
    }
  }

  private static func result(
    of answer: ExecResult, for change: RemoteBatchChange, outcome: ProcessOutcome
  ) -> Result<RemoteAttributes?, RemoteError> {
    let context = change.path
    if let failure = answer.failure {
      return .failure(
        RemoteError(errno: ExecOutput.errno(describedBy: failure), "\(context): \(failure)"))
    }
    switch change {
    case .removeFile, .removeDirectory:
      // No output is success, unless the command itself failed before reaching this job.
      if outcome.exitCode == 0 { return .success(nil) }
    default:
      if let stat = answer.stat, let attributes = ExecOutput.attributes(statLine: stat) {
        return .success(attributes)
      }
    }
    let stderr = String(decoding: outcome.stderr.prefix(500), as: UTF8.self)
    return .failure(
      RemoteError(errno: EIO, "\(context): the batch command failed (\(outcome.status)): \(stderr)")
    )
  }
}

/// A backend whose batches are `ExecBatch`es: it says only how the puts' bytes travel. Its
/// commands act as one caller per call, so a batch of several callers goes in runs of one
/// (`RemoteFilesystem.applyBatch(_:callers:)`).
public protocol ExecBatchBackend: ExecMetadataBackend {
  var batches: ExecBatch { get }
  /// Sends every file's bytes to its sandbox path.
  func stage(_ files: [ExecBatch.StagedFile]) async throws
}

extension ExecBatchBackend {
  public func applyBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await batches.apply(changes) { try await stage($0) }
  }
}
