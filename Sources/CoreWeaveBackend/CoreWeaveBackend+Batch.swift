import Backend
import ExecLayer
import Foundation

/// Batches: `ExecBatch`, with each small file's bytes in its own `WriteFile` to its upload path,
/// several at once on the one HTTP/2 connection (unary calls are cheap there; a tar would need
/// one more command to unpack it).
extension CoreWeaveBackend {
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

  /// Calls in flight at once for a batch's files.
  static let batchWrites = 8

  /// Every put's bytes to its upload path (`uploads`, by index).
  private func upload(_ changes: [RemoteBatchChange], to uploads: [Int: String]) async throws {
    var puts: [(path: String, content: [UInt8])] = []
    for (index, change) in changes.enumerated() {
      guard case .put(_, let content, _, _, _) = change, let path = uploads[index] else { continue }
      puts.append((path, content))
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
      var next = 0
      func start() {
        guard next < puts.count else { return }
        let (path, content) = puts[next]
        next += 1
        group.addTask {
          let context = "upload \(path)"
          if content.count <= self.client.fileCap {
            do {
              try await self.client.writeFile(path, content: Data(content), context: context)
              return
            } catch is CoreWeaveClient.FileTooLarge {
            } catch let error as RemoteError where error.errno == ENOENT {
              // A folder the batch makes: made first, as the other backends' tar and `fs/write`
              // do (its own mkdir then finds it).
            }
          }
          try await self.pushStreamed(
            .bytes(content), size: content.count, to: path, makingParents: true, context: context)
        }
      }
      for _ in 0..<Self.batchWrites { start() }
      while try await group.next() != nil { start() }
    }
  }
}
