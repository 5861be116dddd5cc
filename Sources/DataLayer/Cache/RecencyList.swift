/// Keys in order of last use, oldest first: O(1) touch, remove and oldest.
///
/// Invariant: `links` holds exactly the listed keys; following `newer` from `oldest` visits each
/// once and ends at `newest`.
struct RecencyList<Key: Hashable> {
  private struct Links {
    var older: Key?
    var newer: Key?
  }

  private var links: [Key: Links] = [:]
  private(set) var oldest: Key?
  private var newest: Key?

  var count: Int { links.count }

  func contains(_ key: Key) -> Bool { links[key] != nil }

  /// Makes `key` the most recently used, adding it if new.
  mutating func touch(_ key: Key) {
    if links[key] != nil {
      guard newest != key else { return }
      remove(key)
    }
    links[key] = Links(older: newest, newer: nil)
    if let newest { links[newest]!.newer = key }
    newest = key
    if oldest == nil { oldest = key }
  }

  mutating func remove(_ key: Key) {
    guard let removed = links.removeValue(forKey: key) else { return }
    if let older = removed.older {
      links[older]!.newer = removed.newer
    } else {
      oldest = removed.newer
    }
    if let newer = removed.newer {
      links[newer]!.older = removed.older
    } else {
      newest = removed.older
    }
  }

  mutating func removeAll() {
    links.removeAll()
    oldest = nil
    newest = nil
  }
}
