import Backend
import Synchronization

/// Recent directory listings, so a lookup right after a listing (`ls -l`, `find`) needs no round
/// trip. Entries live for the attribute timeout and are dropped when we change the directory.
final class DirectoryCache: Sendable {
  enum Answer {
    case unknown
    case missing
    case found(RemoteAttributes)
  }

  private struct Listing {
    var entries: [RemoteEntry]
    var indexByName: [String: Int]
    var fetchedAt: ContinuousClock.Instant
  }

  private let lifetime: Duration
  private let listings = Mutex<[String: Listing]>([:])
  private static let pruneThreshold = 4096

  init(lifetime: Duration) {
    self.lifetime = lifetime
  }

  func entries(of directory: String) -> [RemoteEntry]? {
    listings.withLock { listings in
      guard let listing = listings[directory], isFresh(listing) else { return nil }
      return listing.entries
    }
  }

  func lookUp(_ name: String, in directory: String) -> Answer {
    listings.withLock { listings in
      guard let listing = listings[directory], isFresh(listing) else { return .unknown }
      guard let index = listing.indexByName[name] else { return .missing }
      let attributes = listing.entries[index].attributes
      // A file with other names may have changed through one of them since the listing.
      if attributes.type != .directory, (attributes.linkCount ?? 1) > 1 { return .unknown }
      return .found(attributes)
    }
  }

  func store(_ entries: [RemoteEntry], of directory: String) {
    guard lifetime > .zero else { return }
    var index: [String: Int] = [:]
    index.reserveCapacity(entries.count)
    for (position, entry) in entries.enumerated() { index[entry.name] = position }
    let listing = Listing(entries: entries, indexByName: index, fetchedAt: .now)
    listings.withLock { listings in
      if listings.count >= Self.pruneThreshold {
        listings = listings.filter { isFresh($0.value) }
      }
      listings[directory] = listing
    }
  }

  /// Our own change to `directory`'s entries.
  func invalidate(_ directory: String) {
    _ = listings.withLock { $0.removeValue(forKey: directory) }
  }

  /// `directory` and everything below it moved or vanished.
  func invalidateTree(_ directory: String) {
    let prefix = directory == "/" ? "/" : directory + "/"
    listings.withLock { listings in
      listings = listings.filter { $0.key != directory && !$0.key.hasPrefix(prefix) }
    }
  }

  private func isFresh(_ listing: Listing) -> Bool {
    ContinuousClock.now - listing.fetchedAt <= lifetime
  }
}
