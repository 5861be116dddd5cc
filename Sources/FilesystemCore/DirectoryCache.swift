import Backend
import Synchronization

/// Recent directory listings, so a lookup right after a listing (`ls -l`, `find`) needs no round
/// trip. Listings live for the attribute timeout from their fetch; our own changes patch them in
/// place with what the server answered (`patch`), so a folder being filled or emptied through
/// the mount (rsync, tar, rm -rf) keeps answering lookups, "no such name" included.
///
/// Concurrent requests for one listing share one fetch. Each stored listing has a generation
/// number, so the bridge can tell whether the listing the kernel cached (FOPEN_CACHE_DIR) is
/// still the one we hold.
/// Invariant: a listing whose fetch began before one of our own changes is never stored
/// (`changes` moved on), so a change through the mount is never hidden by an older listing.
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
    var generation: UInt64
    /// Lookups this listing answered: what earns a re-listing for lookups (`listsForLookUp`).
    var lookUpsAnswered = 0
  }

  private struct State {
    var listings: [String: Listing] = [:]
    var fetching: [String: Task<[RemoteEntry], any Error>] = [:]
    /// The generation of the listing last handed to the kernel, per directory.
    var served: [String: UInt64] = [:]
    var changes: UInt64 = 0
    var nextGeneration: UInt64 = 1
    /// When a lookup last missed the cache, per directory (see `listsForLookUp`).
    var lookUpMisses: [String: ContinuousClock.Instant] = [:]
  }

  private let lifetime: Duration
  private let state = Mutex(State())
  private static let pruneThreshold = 4096
  /// Entries a re-listing for lookups may cost per lookup the last listing answered.
  static let relistingCost = 16

  init(lifetime: Duration) {
    self.lifetime = lifetime
  }

  var isEnabled: Bool { lifetime > .zero }

  func entries(of directory: String) -> [RemoteEntry]? {
    state.withLock { state in
      guard let listing = state.listings[directory], isFresh(listing) else { return nil }
      return listing.entries
    }
  }

  /// The entries of `directory` and their generation (0: not cached): from the cache, from a
  /// fetch in flight, or from `fetch`.
  func entries(
    of directory: String, fetch: @escaping @Sendable () async throws -> [RemoteEntry]
  ) async throws -> (entries: [RemoteEntry], generation: UInt64) {
    enum Step {
      case cached([RemoteEntry], UInt64)
      case wait(Task<[RemoteEntry], any Error>, changes: UInt64, owner: Bool)
    }
    let step = state.withLock { state -> Step in
      if let listing = state.listings[directory], isFresh(listing) {
        return .cached(listing.entries, listing.generation)
      }
      if let running = state.fetching[directory] {
        return .wait(running, changes: state.changes, owner: false)
      }
      let task = Task { try await fetch() }
      state.fetching[directory] = task
      return .wait(task, changes: state.changes, owner: true)
    }
    switch step {
    case .cached(let entries, let generation):
      return (entries, generation)
    case .wait(let task, let changes, let owner):
      let result = await task.result
      guard owner else { return (try result.get(), 0) }
      let generation = state.withLock { state -> UInt64 in
        if state.fetching[directory] == task { state.fetching[directory] = nil }
        guard case .success(let entries) = result, state.changes == changes else { return 0 }
        return store(entries, of: directory, in: &state)
      }
      return (try result.get(), generation)
    }
  }

  /// Whether `directory` has a fresh listing or one being fetched.
  func isCachedOrFetching(_ directory: String) -> Bool {
    state.withLock { state in
      if let listing = state.listings[directory], isFresh(listing) { return true }
      return state.fetching[directory] != nil
    }
  }

  /// The fresh listing of `directory` and where `name` is in it.
  func position(of name: String, in directory: String) -> (Int, [RemoteEntry])? {
    state.withLock { state in
      guard let listing = state.listings[directory], isFresh(listing),
        let index = listing.indexByName[name]
      else { return nil }
      return (index, listing.entries)
    }
  }

  /// Whether a lookup that missed the cache should list `directory` rather than stat one name:
  /// yes when a listing is already on its way, or when another lookup there missed within the
  /// lifetime. A tool that stats many names of one directory (`git status`, `make`, a
  /// compiler's include search) then pays one listing, not a round trip per name; a lone stat
  /// stays a stat.
  ///
  /// A listing costs a round trip plus O(entries); a folder listed before is listed again only
  /// when its last listing answered at least one lookup per `relistingCost` entries, so no
  /// lookup costs O(folder size) amortized, however big the folder.
  func listsForLookUp(in directory: String) -> Bool {
    guard isEnabled else { return false }
    let now = ContinuousClock.now
    return state.withLock { state in
      if state.fetching[directory] != nil { return true }
      if let last = state.listings[directory], last.entries.count > Self.relistingCost * 4,
        last.lookUpsAnswered * Self.relistingCost < last.entries.count
      {
        return false
      }
      if let missed = state.lookUpMisses[directory], now - missed <= lifetime { return true }
      if state.lookUpMisses.count >= Self.pruneThreshold {
        state.lookUpMisses = state.lookUpMisses.filter { now - $0.value <= lifetime }
      }
      state.lookUpMisses[directory] = now
      return false
    }
  }

  func lookUp(_ name: String, in directory: String) -> Answer {
    state.withLock { state in
      guard let listing = state.listings[directory], isFresh(listing) else { return .unknown }
      state.listings[directory]?.lookUpsAnswered += 1
      guard let index = listing.indexByName[name] else { return .missing }
      return .found(listing.entries[index].attributes)
    }
  }

  /// Our own change to `name` in `directory`, as the server answered it: its attributes, or
  /// nil when it is gone. A fresh listing is patched in place under a new generation (the
  /// kernel's cached copy is then refreshed); its age stays, so changes made by others still
  /// show within the lifetime. A fetch already under way is not stored: it may predate this.
  func patch(_ directory: String, name: String, attributes: RemoteAttributes?) {
    state.withLock { state in
      state.changes += 1
      state.fetching[directory] = nil
      guard var listing = state.listings[directory], isFresh(listing) else { return }
      state.listings[directory] = nil  // one owner of the arrays while they change
      if let index = listing.indexByName[name] {
        if let attributes {
          listing.entries[index].attributes = attributes
        } else {
          // The last entry takes the removed one's place: O(1), so emptying a big folder entry
          // by entry stays linear. Listings have no order to keep.
          let last = listing.entries.removeLast()
          listing.indexByName[name] = nil
          if index < listing.entries.count {
            listing.entries[index] = last
            listing.indexByName[last.name] = index
          }
        }
      } else if let attributes {
        listing.indexByName[name] = listing.entries.count
        listing.entries.append(RemoteEntry(name: name, attributes: attributes))
      }
      listing.generation = state.nextGeneration
      state.nextGeneration += 1
      state.listings[directory] = listing
    }
  }

  /// A directory we just made: its listing is known to be empty.
  func installEmpty(_ directory: String) {
    state.withLock { state in
      state.changes += 1
      state.fetching[directory] = nil
      _ = store([], of: directory, in: &state)
    }
  }

  /// The kernel now holds the listing of `generation` for `directory`.
  func markServed(_ directory: String, generation: UInt64) {
    state.withLock { $0.served[directory] = generation }
  }

  /// Whether the kernel's cached listing of `directory` is still the fresh one we hold.
  func kernelCacheIsCurrent(_ directory: String) -> Bool {
    state.withLock { state in
      guard let listing = state.listings[directory], isFresh(listing) else { return false }
      return state.served[directory] == listing.generation
    }
  }

  /// Our own change to `directory`'s entries.
  func invalidate(_ directory: String) {
    state.withLock { state in
      state.changes += 1
      state.listings[directory] = nil
      state.fetching[directory] = nil
      state.served[directory] = nil
    }
  }

  /// `directory` and everything below it moved or vanished.
  func invalidateTree(_ directory: String) {
    let prefix = directory == "/" ? "/" : directory + "/"
    let inside = { (path: String) in path == directory || path.hasPrefix(prefix) }
    state.withLock { state in
      state.changes += 1
      state.listings = state.listings.filter { !inside($0.key) }
      state.fetching = state.fetching.filter { !inside($0.key) }
      state.served = state.served.filter { !inside($0.key) }
    }
  }

  /// Stores a listing under a new generation; returns it (0 when caching is off).
  private func store(_ entries: [RemoteEntry], of directory: String, in state: inout State)
    -> UInt64
  {
    guard lifetime > .zero else { return 0 }
    var index: [String: Int] = [:]
    index.reserveCapacity(entries.count)
    for (position, entry) in entries.enumerated() { index[entry.name] = position }
    if state.listings.count >= Self.pruneThreshold {
      state.listings = state.listings.filter { isFresh($0.value) }
      state.served = state.served.filter { state.listings[$0.key] != nil }
    }
    let generation = state.nextGeneration
    state.nextGeneration += 1
    state.listings[directory] = Listing(
      entries: entries, indexByName: index, fetchedAt: .now, generation: generation)
    return generation
  }

  private func isFresh(_ listing: Listing) -> Bool {
    ContinuousClock.now - listing.fetchedAt <= lifetime
  }
}
