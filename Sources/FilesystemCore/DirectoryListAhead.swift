import Backend
import Synchronization

/// Lists the subdirectories of a directory being read before they are asked for, so a traversal
/// (`find`, `ls -R`, `du`, `git status`) overlaps its round trips instead of paying them one
/// after another. Bounded: at most `perListing` subdirectories per listing, `width` fetches at a
/// time per listing and `globalLimit` in all; what is fetched only fills the directory cache
/// (and expires with it).
final class DirectoryListAhead: Sendable {
  static let perListing = 256
  static let width = 8
  static let globalLimit = 16
  private let inFlight = Mutex(0)

  func start(
    after directory: String, entries: [RemoteEntry], cache: DirectoryCache,
    backend: any RemoteFilesystem
  ) {
    guard cache.isEnabled else { return }
    let candidates = entries.lazy.filter { $0.attributes.type == .directory }
      .map { RemotePath.join(directory, $0.name) }
      .filter { !cache.isCachedOrFetching($0) }
      .prefix(Self.perListing)
    guard !candidates.isEmpty else { return }
    let paths = Array(candidates)
    Task {
      await withTaskGroup(of: Void.self) { group in
        var running = 0
        for path in paths {
          if running >= Self.width {
            await group.next()
            running -= 1
          }
          guard acquire() else { break }
          running += 1
          group.addTask { [self] in
            defer { release() }
            _ = try? await cache.entries(of: path) { try await backend.listDirectory(path) }
          }
        }
      }
    }
  }

  private func acquire() -> Bool {
    inFlight.withLock { count in
      guard count < Self.globalLimit else { return false }
      count += 1
      return true
    }
  }

  private func release() {
    inFlight.withLock { $0 -= 1 }
  }
}
