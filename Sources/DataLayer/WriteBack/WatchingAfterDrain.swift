import Backend

/// Watches through `inner`, except that a directory made here, whose creation is still in the
/// journal, is watched only once the sandbox has it. Asked earlier, the sandbox refuses the
/// watch (ENOENT), the watch is forgotten, and the kernel's next lookup there asks again: an
/// rsync of 1,100 folders made 2,134 watch requests so, most of them refused.
struct WatchingAfterDrain: RemoteWatching {
  let inner: any RemoteWatching
  let writeBack: WriteBackBackend
  /// How often a waiting watch looks again; a drain pass takes about as long.
  static let recheck: Duration = .milliseconds(50)

  func watchDirectory(_ path: String) -> AsyncThrowingStream<RemoteWatchEvent, any Error> {
    guard writeBack.createsDirectory(path) else { return inner.watchDirectory(path) }
    let (stream, continuation) = AsyncThrowingStream<RemoteWatchEvent, any Error>.makeStream()
    let forwarding = Task { [inner, writeBack] in
      while writeBack.createsDirectory(path) {
        try? await Task.sleep(for: Self.recheck)
        if Task.isCancelled {
          continuation.finish()
          return
        }
      }
      do {
        for try await event in inner.watchDirectory(path) { continuation.yield(event) }
        continuation.finish()
      } catch {
        continuation.finish(throwing: error)
      }
    }
    continuation.onTermination = { _ in forwarding.cancel() }
    return stream
  }
}

extension WriteBackBackend {
  /// `inner`'s watches, each started once the sandbox has the directory (`WatchingAfterDrain`).
  public func watching(through inner: any RemoteWatching) -> any RemoteWatching {
    WatchingAfterDrain(inner: inner, writeBack: self)
  }

  /// Whether `path` or a folder above it is a directory made here that the sandbox does not
  /// have yet.
  func createsDirectory(_ path: String) -> Bool {
    state.withLock { state in
      var current = path
      while current != "/" && !current.isEmpty {
        if state.view.pendingName(current)?.change == .directory { return true }
        current = RemotePath.parent(of: current)
      }
      return false
    }
  }
}
