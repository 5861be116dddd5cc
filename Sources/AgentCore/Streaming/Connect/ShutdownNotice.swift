import Foundation

/// Fired when the agent begins a graceful shutdown, so long streams (watches, long processes)
/// end with an `unavailable` end-stream instead of holding the server open.
final class ShutdownNotice: @unchecked Sendable {
  private let lock = NSLock()
  private var fired = false
  private var waiters: [CheckedContinuation<Void, Never>] = []

  func fire() {
    let waiting = lock.withLock {
      fired = true
      defer { waiters = [] }
      return waiters
    }
    waiting.forEach { $0.resume() }
  }

  var hasFired: Bool { lock.withLock { fired } }

  /// Returns once fired. Not cancellable by itself: callers race it against their own work and
  /// `fire()` is always called when the call ends, so no waiter is left behind.
  func wait() async {
    await withCheckedContinuation { continuation in
      let resumeNow = lock.withLock {
        if fired { return true }
        waiters.append(continuation)
        return false
      }
      if resumeNow { continuation.resume() }
    }
  }
}
