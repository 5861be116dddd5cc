import Foundation

/// What a streaming handler's loop reacts to: a source element, a keepalive due after a quiet
/// interval, or the call's deadline (`Connect-Timeout-Ms`).
enum StreamTick<Element: Sendable>: Sendable {
  case element(Element)
  case keepalive
  case deadline
  /// The agent is shutting down.
  case shutdown
}

/// Merges `source` with keepalive ticks (only after `interval` without a source element, as envd
/// resets its ticker on every event), an optional deadline and the agent's shutdown. `stop()` ends the helper tasks; the
/// merged stream also ends when `source` ends.
final class StreamTicker<Element: Sendable>: Sendable {
  let ticks: AsyncStream<StreamTick<Element>>
  private let tasks: [Task<Void, Never>]

  init(
    source: AsyncStream<Element>, keepalive interval: Duration, deadline: Duration?,
    shutdown: ShutdownNotice
  ) {
    let (ticks, continuation) = AsyncStream.makeStream(of: StreamTick<Element>.self)
    self.ticks = ticks
    let lastActivity = ActivityClock()
    var tasks: [Task<Void, Never>] = []
    tasks.append(
      Task {
        for await element in source {
          lastActivity.touch()
          continuation.yield(.element(element))
        }
        continuation.finish()
      })
    tasks.append(
      Task {
        while !Task.isCancelled {
          let due = lastActivity.last + interval
          try? await Task.sleep(until: due, clock: .continuous)
          if Task.isCancelled { break }
          if ContinuousClock.now >= lastActivity.last + interval {
            lastActivity.touch()
            continuation.yield(.keepalive)
          }
        }
      })
    if let deadline {
      tasks.append(
        Task {
          guard (try? await Task.sleep(for: deadline)) != nil else { return }
          continuation.yield(.deadline)
        })
    }
    tasks.append(
      Task {
        await shutdown.wait()
        if !Task.isCancelled { continuation.yield(.shutdown) }
      })
    self.tasks = tasks
    continuation.onTermination = { [tasks] _ in tasks.forEach { $0.cancel() } }
  }

  func stop() {
    tasks.forEach { $0.cancel() }
  }

  deinit { stop() }
}

/// When the stream last carried something.
private final class ActivityClock: @unchecked Sendable {
  private let lock = NSLock()
  private var instant = ContinuousClock.now
  var last: ContinuousClock.Instant { lock.withLock { instant } }
  func touch() { lock.withLock { instant = .now } }
}
