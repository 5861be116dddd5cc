import Backend
import Synchronization

/// Paths this mount is changing or just changed, so the sandbox's watch events about them are
/// recognised as our own echo and not turned into invalidations (our caches already hold what
/// the server answered). A path counts as ours while a change to it is in flight and for
/// `window` after it ended: a change made there by someone else within that window shows once
/// the attribute timeout passes, as without watches.
public final class OwnChanges: RemoteChangeObserver {
  private struct State {
    var inFlight: [String: Int] = [:]
    var ended: [String: ContinuousClock.Instant] = [:]
    /// `ended` is pruned when it grows past this: twice what the last pruning kept, so a burst
    /// still inside the window (a tar -x, an rm -rf: 20,000 paths) is scanned now and then,
    /// not at every change after it (1 ms each, which a rename after an rm -rf paid).
    var pruneAt = OwnChanges.pruneThreshold
    var prunePasses = 0
  }
  private let state = Mutex(State())
  let window: Duration

  /// The event of a change comes about one round trip after the change; a second is slack for
  /// a loaded sandbox.
  public static let defaultWindow = Duration.seconds(2)
  static let pruneThreshold = 4096

  public init(window: Duration = OwnChanges.defaultWindow) {
    self.window = window
  }

  /// The paths and their directories: a change moves its directory's times (and the agent puts
  /// them back after a replace, another event).
  private static func affected(_ paths: [String]) -> [String] {
    paths + paths.map { RemotePath.parent(of: $0) }
  }

  public func begin(_ paths: [String], _ kind: RemoteChangeKind) {
    state.withLock { state in
      for path in Self.affected(paths) { state.inFlight[path, default: 0] += 1 }
    }
  }

  public func end(_ paths: [String], _ kind: RemoteChangeKind) {
    let now = ContinuousClock.now
    state.withLock { state in
      for path in Self.affected(paths) {
        if let count = state.inFlight[path], count > 1 {
          state.inFlight[path] = count - 1
        } else {
          state.inFlight[path] = nil
        }
        state.ended[path] = now
      }
      if state.ended.count > state.pruneAt {
        state.ended = state.ended.filter { now - $0.value <= window }
        state.pruneAt = max(Self.pruneThreshold, 2 * state.ended.count)
        state.prunePasses += 1
      }
    }
  }

  /// Paths remembered as just changed, and how often they were pruned: for tests.
  var bookkeeping: (ended: Int, prunePasses: Int) {
    state.withLock { ($0.ended.count, $0.prunePasses) }
  }

  /// Whether an event about `path` now is the echo of our own change.
  func isOwn(_ path: String) -> Bool {
    state.withLock { state in
      if state.inFlight[path] != nil { return true }
      guard let ended = state.ended[path] else { return false }
      return ContinuousClock.now - ended <= window
    }
  }
}
