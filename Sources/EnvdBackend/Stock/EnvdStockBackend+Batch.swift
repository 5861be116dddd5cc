import Backend
import ExecLayer
import Foundation
import HTTPTransport

/// Batches on stock envd, which has no `Batch` method: the small files' bytes go in ONE multipart
/// `POST /files`, each to a temporary name beside its target; then one process per 64 changes
/// applies everything in order (a put is a check of its size and a rename over the target, with
/// its mode and times). A process before them reads the folders' mtimes, which the puts put
/// back. So a drained rsync costs three requests per batch, not five per file.
extension EnvdStockBackend {
  /// Its processes act as one caller per call.
  public func applyBatch(_ changes: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await applyInRunsOfOneCaller(changes, callers: callers) { try await stockBatch($0) }
  }

  func stockBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
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
    do {
      try await upload(changes, to: uploads)
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
          client.protocolPath(change.path),
          ExecScript.asCaller()
            + steps(
              for: change, upload: uploads[index],
              folderTime: folderTimes[RemotePath.parent(of: change.path)])
        ))
    }
    var results: [Result<RemoteAttributes?, RemoteError>] = []
    var start = 0
    while start < jobs.count {
      let chunk = Array(jobs[start..<min(start + ExecRunner.batchLimit, jobs.count)])
      let context = "batch of \(chunk.count) changes"
      let outcome: ProcessOutcome
      do {
        outcome = try await client.runProcess(
          ProcessCommand("/bin/sh", ExecScript.arguments(for: chunk)), context: context)
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

  /// A put's bytes go first to this protocol path beside its target. One name per target, not
  /// a random one: a batch cut after its upload (the agent gone) is sent again, and its retry
  /// overwrites and then consumes the same file.
  private func uploadPath(for path: String) -> String {
    let name = String(RemotePath.name(of: path).prefix(200))
    return client.protocolPath(
      RemotePath.join(RemotePath.parent(of: path), ".\(name).sandbox-mount-batch"))
  }

  /// Sends every put's bytes to its upload path (`uploads`, by index): one multipart request.
  private func upload(_ changes: [RemoteBatchChange], to uploads: [Int: String]) async throws {
    var body: [UInt8] = []
    let boundary = "sandbox-mount-" + String(UInt64.random(in: 0..<(1 << 60)), radix: 36)
    for (index, change) in changes.enumerated() {
      guard case .put(_, let content, _, _, _) = change, let temporary = uploads[index] else {
        continue
      }
      if temporary.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) {
        body += Array(
          ("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(temporary)\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n").utf8)
        body += content
        body += Array("\r\n".utf8)
      } else {
        // A name a multipart header cannot carry plainly: its own upload, path in the query.
        try await postBytes(content, toProtocolPath: temporary)
      }
    }
    guard !body.isEmpty else { return }
    body += Array("--\(boundary)--\r\n".utf8)
    try await postFiles(
      url: client.multipartFilesURL, contentType: "multipart/form-data; boundary=\(boundary)",
      body: body, context: "upload of \(uploads.count) files")
  }

  private func postBytes(_ content: [UInt8], toProtocolPath path: String) async throws {
    let url = client.multipartFilesURL
    try await postFiles(
      url: url + (url.contains("?") ? "&" : "?") + "path=" + QueryEncoding.encode(path),
      contentType: "application/octet-stream", body: content, context: "upload \(path)")
  }

  private func postFiles(url: String, contentType: String, body: [UInt8], context: String)
    async throws
  {
    let response = try await client.files(
      HTTPRequest(
        method: .post, url: url, headers: ["Content-Type: \(contentType)"], body: .bytes(body),
        sink: .memory(expected: 0, limit: 1 << 20), bulk: true))
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.isSuccessStatus else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
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
      let outcome = try await client.runProcess(
        ProcessCommand(
          "/bin/sh", ExecScript.arguments(for: chunk.map { (client.protocolPath($0), [.stat]) })),
        context: "stat of \(chunk.count) folders")
      for (folder, answer) in zip(chunk, ExecOutput.results(outcome.stdout, jobs: chunk.count)) {
        if let line = answer.stat, let attributes = ExecOutput.attributes(statLine: line) {
          times[folder] = attributes.modificationTime
        }
      }
      start += chunk.count
    }
    return times
  }

  private func steps(for change: RemoteBatchChange, upload: String?, folderTime: RemoteTime?)
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
      // No output is success, unless the process itself failed before reaching this job.
      if outcome.exitCode == 0 { return .success(nil) }
    default:
      if let stat = answer.stat, let attributes = ExecOutput.attributes(statLine: stat) {
        return .success(attributes)
      }
    }
    let stderr = String(decoding: outcome.stderr.prefix(500), as: UTF8.self)
    return .failure(
      RemoteError(errno: EIO, "\(context): the batch process failed (\(outcome.status)): \(stderr)")
    )
  }
}
