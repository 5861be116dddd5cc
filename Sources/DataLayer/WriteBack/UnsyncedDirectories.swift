import Backend
import Synchronization

/// The directories whose entries or attributes this mount changed in the sandbox since their
/// last remote fsync. An fsync of any other directory has nothing of ours to make durable:
/// after the journal's drain it is answered without a round trip (`sync DIR` after an edit
/// of a file in place, which changes no entry).
public final class UnsyncedDirectories: RemoteChangeObserver {
  private struct State {
    var paths: Set<String> = []
    /// More paths than `limit` were noted: every directory counts as changed from then on.
    var overflowed = false
  }
  private let state = Mutex(State())
  private let limit: Int

  public init(limit: Int = 100_000) {
    self.limit = limit
  }

  public func begin(_ paths: [String], _ kind: RemoteChangeKind) {}

  /// Noted when the change ended, so an fsync that started before it covers it or leaves it
  /// noted for the next.
  public func end(_ paths: [String], _ kind: RemoteChangeKind) {
    state.withLock { state in
      guard !state.overflowed else { return }
      for path in paths {
        // The path itself (its attributes), and its directory unless bytes were written in
        // place.
        state.paths.insert(path)
        if kind == .entries { state.paths.insert(RemotePath.parent(of: path)) }
      }
      if state.paths.count > limit {
        state.overflowed = true
        state.paths = []
      }
    }
  }

  /// Whether `directory` needs a remote fsync; it is no longer noted (note it again with
  /// `noteAgain` if that fsync fails).
  func take(_ directory: String) -> Bool {
    state.withLock { state in state.overflowed || state.paths.remove(directory) != nil }
  }

  func noteAgain(_ directory: String) {
    state.withLock { state in
      if !state.overflowed { state.paths.insert(directory) }
    }
  }
}
