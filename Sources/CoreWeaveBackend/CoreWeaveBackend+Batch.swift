import Backend
import ExecLayer
import Foundation

/// Batches: `ExecBatch`, with each small file's bytes in its own `WriteFile` to its upload path,
/// several at once on the one HTTP/2 connection (unary calls are cheap there; a tar would need
/// one more command to unpack it).
extension CoreWeaveBackend: ExecBatchBackend {
  /// Calls in flight at once for a batch's files.
  static let batchWrites = 8

  public func stage(_ files: [ExecBatch.StagedFile]) async throws {
    let puts = files.map { ($0.path, $0.content) }
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
