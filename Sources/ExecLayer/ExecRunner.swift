import Backend
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Runs fallback jobs as processes with group commit: a job that arrives while a process is
/// running waits and then goes, with every other waiting job, into ONE process. A lone job never
/// waits (no timer window, so sequential callers pay no latency), while bursts (a parallel
/// `chmod -R`, rsync's chmod + utimens racing its next file, many FUSE requests at once) cost one
/// process per burst instead of one per operation. Every job still gets its own result and errno.
public final class ExecRunner: Sendable {
  private struct Pending: Sendable {
    var path: String
    var steps: [ExecScript.Step]
    var continuation: CheckedContinuation<ExecResult, any Error>
  }

  private struct State {
    var running = false
    var queue: [Pending] = []
  }

  private let state = Mutex(State())
  /// The sandbox's command API the jobs run on.
  public let executor: any ProcessExecutor
  /// Caps one process's argv (Linux allows 2 MiB in total, 128 KiB per argument).
  public static let batchLimit = 64

  public init(executor: any ProcessExecutor) {
    self.executor = executor
  }

  /// Runs `steps` on the protocol path `path`; returns what the job printed.
  /// Under a non-root `CallerIdentity.current`, the job's commands run as that caller.
  public func run(_ path: String, _ steps: [ExecScript.Step]) async throws -> ExecResult {
    let steps = ExecScript.asCaller() + steps
    return try await withCheckedThrowingContinuation { continuation in
      let starts = state.withLock { state in
        state.queue.append(Pending(path: path, steps: steps, continuation: continuation))
        if state.running { return false }
        state.running = true
        return true
      }
      if starts { Task { await self.drain() } }
    }
  }

  private func drain() async {
    while true {
      let batch = state.withLock { state -> [Pending] in
        let batch = Array(state.queue.prefix(Self.batchLimit))
        state.queue.removeFirst(batch.count)
        if batch.isEmpty { state.running = false }
        return batch
      }
      if batch.isEmpty { return }
      await execute(batch)
    }
  }

  private func execute(_ batch: [Pending]) async {
    let context = batch.count == 1 ? "fallback for \(batch[0].path)" : "\(batch.count) fallbacks"
    do {
      let outcome = try await executor.run(
        ProcessCommand("/bin/sh", ExecScript.arguments(for: batch.map { ($0.path, $0.steps) })))
      let results = ExecOutput.results(outcome.stdout, jobs: batch.count)
      let stderr = String(decoding: outcome.stderr.prefix(500), as: UTF8.self)
      for (job, result) in zip(batch, results) {
        if outcome.exitCode != 0 && result.failure == nil && result.stat == nil
          && result.linkText == nil && result.statfs == nil
        {
          job.continuation.resume(
            throwing: RemoteError(
              errno: EIO, "\(context): the fallback process failed (\(outcome.status)): \(stderr)"))
        } else {
          job.continuation.resume(returning: result)
        }
      }
    } catch {
      for job in batch { job.continuation.resume(throwing: error) }
    }
  }
}
