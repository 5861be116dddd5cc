import Synchronization

/// Directories seen to exist in the last second, so the parent check before a stock-envd upload
/// (envd's POST would create a missing parent) costs no round trip right after a lookup, a
/// listing or an earlier upload. One second is FUSE's default attribute timeout: the kernel
/// trusts its own cached attributes that long too. Our own removals and renames forget at once.
final class KnownDirectories: Sendable {
  private let lifetime: Duration
  private let seen = Mutex<[String: ContinuousClock.Instant]>([:])
  private static let capacity = 4096

  init(lifetime: Duration = .seconds(1)) { self.lifetime = lifetime }

  func contains(_ path: String) -> Bool {
    let now = ContinuousClock.now
    return seen.withLock { seen in
      guard let at = seen[path] else { return false }
      if now - at < lifetime { return true }
      seen[path] = nil
      return false
    }
  }

  func remember(_ path: String) {
    let now = ContinuousClock.now
    seen.withLock { seen in
      if seen.count >= Self.capacity { seen = seen.filter { now - $0.value < lifetime } }
      if seen.count < Self.capacity { seen[path] = now }
    }
  }

  /// Forgets `path` and everything below it.
  func forget(_ path: String) {
    let prefix = path == "/" ? "/" : path + "/"
    seen.withLock { seen in
      seen = seen.filter { $0.key != path && !$0.key.hasPrefix(prefix) }
    }
  }
}
