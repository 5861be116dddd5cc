import Foundation

/// Flow control between a pipe-reading thread and the HTTP stream that forwards its chunks:
/// the reader blocks while `limit` chunks are in flight, so a slow client slows the process down
/// (as envd's bounded channels do) instead of growing memory. Once the consumer is gone, nothing
/// blocks and chunks are dropped.
final class OutputGate: @unchecked Sendable {
  private let condition = NSCondition()
  private var inFlight = 0
  private var attached = true
  private let limit: Int

  init(limit: Int = 16) {
    self.limit = limit
  }

  /// Waits for room; false when there is no consumer any more (drop the chunk).
  func enter() -> Bool {
    condition.lock()
    defer { condition.unlock() }
    while attached && inFlight >= limit { condition.wait() }
    guard attached else { return false }
    inFlight += 1
    return true
  }

  /// The consumer has written one chunk.
  func leave() {
    condition.lock()
    inFlight -= 1
    condition.signal()
    condition.unlock()
  }

  /// The consumer went away (client aborted the stream).
  func detach() {
    condition.lock()
    attached = false
    condition.broadcast()
    condition.unlock()
  }
}
