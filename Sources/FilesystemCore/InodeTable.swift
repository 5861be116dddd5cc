import Backend
import Synchronization

/// Inode numbers ↔ remote paths, the kernel's lookup counts, and cached attributes.
///
/// Numbers are never reused and a path keeps its number while mounted, even after the kernel
/// forgets it, so tools that compare inode numbers over time (git's index, `find -samefile`) see
/// stable values. A path removed or replaced through the mount loses its number; an inode the
/// kernel still holds then becomes an orphan (no path) until forgotten.
final class InodeTable: Sendable {
  static let rootInode: UInt64 = 1

  /// A class, so the tables move a reference when they grow, not a whole record (in a cold
  /// `find` of 10,000 files, moving records was a tenth of the daemon's CPU).
  private final class Record {
    var path: String?
    var lookups: UInt64
    var attributes: RemoteAttributes?
    var fetchedAt: ContinuousClock.Instant
    /// Paths mapped to this node: more than one for hard links.
    var names = 1

    init(
      path: String?, lookups: UInt64, attributes: RemoteAttributes?,
      fetchedAt: ContinuousClock.Instant
    ) {
      self.path = path
      self.lookups = lookups
      self.attributes = attributes
      self.fetchedAt = fetchedAt
    }

    func update(
      _ newAttributes: RemoteAttributes?, at now: ContinuousClock.Instant, countLookup: Bool
    ) {
      if let newAttributes {
        attributes = newAttributes
        fetchedAt = now
      }
      if countLookup { lookups += 1 }
    }
  }

  private struct State {
    var records: [UInt64: Record] = [:]
    var inodeByPath = PathIndex()
    var nextInode: UInt64 = InodeTable.rootInode + 1
  }

  private let state: Mutex<State>

  /// Hard links are recognised by remote inode numbers, when the backend gives them for every
  /// stat (`RemoteCapabilities.inodeNumbers`; a number seen only sometimes would split or merge
  /// nodes).
  private let linksByRemoteInode: Bool

  init(linksByRemoteInode: Bool = false) {
    self.linksByRemoteInode = linksByRemoteInode
    var initial = State()
    // The root is never forgotten: the kernel holds it for the life of the mount.
    initial.records[Self.rootInode] = Record(
      path: "/", lookups: 1, attributes: nil, fetchedAt: .now)
    initial.inodeByPath["/"] = Self.rootInode
    state = Mutex(initial)
  }

  /// The path of `inode`, or nil for an orphan or an unknown number.
  func path(of inode: UInt64) -> String? {
    state.withLock { $0.records[inode]?.path }
  }

  /// The number for `path` (made if new), with `attributes` cached. `countLookup` adds one to the
  /// kernel's lookup count, as every entry handed to the kernel must.
  ///
  /// Called for every entry of every listing (10,000 times in a cold `find` of 10,000 files), so
  /// a record is made whole or changed in place, with one dictionary access.
  func inode(for path: String, attributes: RemoteAttributes?, countLookup: Bool) -> UInt64 {
    let now = ContinuousClock.now
    return state.withLock { state in
      if let known = state.inodeByPath[path] {
        state.records[known]?.update(attributes, at: now, countLookup: countLookup)
        return known
      }
      if linksByRemoteInode, let linked = Self.linkedNode(of: attributes, in: state) {
        // Another name of a file we know (a hard link): the same node, as the kernel expects.
        state.inodeByPath[path] = linked
        state.records[linked]?.names += 1
        state.records[linked]?.update(attributes, at: now, countLookup: countLookup)
        return linked
      }
      let inode = state.nextInode
      state.nextInode += 1
      state.inodeByPath[path] = inode
      state.records[inode] = Record(
        path: path, lookups: countLookup ? 1 : 0, attributes: attributes, fetchedAt: now)
      return inode
    }
  }

  func addLookup(_ inode: UInt64) {
    state.withLock { $0.records[inode]?.lookups += 1 }
  }

  /// The kernel dropped `count` references. An orphan with none left is gone for good; a record
  /// with a path stays so its number stays stable.
  func forget(_ inode: UInt64, count: UInt64) {
    guard inode != Self.rootInode else { return }
    state.withLock { state in
      guard let record = state.records[inode] else { return }
      record.lookups -= min(record.lookups, count)
      if record.lookups == 0 && record.path == nil { state.records[inode] = nil }
    }
  }

  /// Cached attributes no older than `maxAge`; `nil` for `maxAge` accepts any age.
  func attributes(of inode: UInt64, maxAge: Duration?) -> RemoteAttributes? {
    state.withLock { state in
      guard let record = state.records[inode], let attributes = record.attributes else {
        return nil
      }
      if let maxAge, ContinuousClock.now - record.fetchedAt > maxAge { return nil }
      return attributes
    }
  }

  func store(_ attributes: RemoteAttributes, for inode: UInt64) {
    let now = ContinuousClock.now
    state.withLock { state in
      invalidateOtherLinks(of: state.records[inode]?.attributes, except: inode, in: &state)
      invalidateOtherLinks(of: attributes, except: inode, in: &state)
      state.records[inode]?.attributes = attributes
      state.records[inode]?.fetchedAt = now
    }
  }

  /// Forgets cached attributes but keeps them as a last resort for orphans.
  func invalidateAttributes(of inode: UInt64) {
    state.withLock { state in
      invalidateOtherLinks(of: state.records[inode]?.attributes, except: inode, in: &state)
      state.records[inode]?.fetchedAt = .now - .seconds(1_000_000)
    }
  }

  /// `path` is a new hard link to the node of `source`: both names share the node (its staging
  /// file and attributes), as the kernel expects of link(2). Works without remote inode numbers.
  func addName(_ path: String, toNodeOf source: String) {
    state.withLock { state in
      guard let inode = state.inodeByPath[source], state.inodeByPath[path] != inode else { return }
      detach(path, in: &state)
      state.inodeByPath[path] = inode
      state.records[inode]?.names += 1
    }
  }

  /// How many paths share `inode` (hard links made or seen through the mount).
  func nameCount(of inode: UInt64) -> Int {
    state.withLock { $0.records[inode]?.names ?? 1 }
  }

  /// The other names of the node at `path` (hard links), if any.
  func otherNames(of path: String) -> [String] {
    state.withLock { state in
      guard let inode = state.inodeByPath[path], (state.records[inode]?.names ?? 1) > 1
      else { return [] }
      return state.inodeByPath.paths(of: inode).filter { $0 != path }
    }
  }

  /// The node of a file with several links already known under another name that still exists.
  private static func linkedNode(of attributes: RemoteAttributes?, in state: State) -> UInt64? {
    guard let attributes, let remote = attributes.inode, attributes.type != .directory,
      (attributes.linkCount ?? 1) > 1
    else { return nil }
    return state.records.first { $0.value.path != nil && $0.value.attributes?.inode == remote }?
      .key
  }

  /// Hard links are separate paths here, each with its own number and cached attributes: a
  /// change through one name (size, mode, nlink) makes the others' stale. Only files known to
  /// have several links (remote inode numbers, from the agent extension) pay for the scan.
  private func invalidateOtherLinks(
    of attributes: RemoteAttributes?, except inode: UInt64, in state: inout State
  ) {
    guard linksByRemoteInode, let attributes, let remote = attributes.inode,
      attributes.type != .directory,
      (attributes.linkCount ?? 1) > 1
    else { return }
    for (number, record) in state.records
    where number != inode && record.attributes?.inode == remote {
      state.records[number]?.fetchedAt = .now - .seconds(1_000_000)
    }
  }

  /// `invalidateAttributes(of:)` for the inode of `path`, if it has one.
  func invalidateAttributes(ofPath path: String) {
    state.withLock { state in
      guard let inode = state.inodeByPath[path] else { return }
      state.records[inode]?.fetchedAt = .now - .seconds(1_000_000)
    }
  }

  /// The attributes known for `path`'s inode, if fetched within `maxAge`.
  func attributes(ofPath path: String, maxAge: Duration) -> RemoteAttributes? {
    guard let inode = state.withLock({ $0.inodeByPath[path] }) else { return nil }
    return attributes(of: inode, maxAge: maxAge)
  }

  /// `store` for the inode of `path`, if it has one.
  func store(_ attributes: RemoteAttributes, forPath path: String) {
    guard let inode = state.withLock({ $0.inodeByPath[path] }) else { return }
    store(attributes, for: inode)
  }

  /// The file at `path` lost this name, its only one: a descriptor still open on it says
  /// nlink 0 (fstat after unlink), and its ctime is the unlink's.
  func lastNameRemoved(_ path: String, at time: RemoteTime) {
    state.withLock { state in
      guard let inode = state.inodeByPath[path], let record = state.records[inode],
        record.names <= 1, var attributes = record.attributes, attributes.type != .directory,
        attributes.linkCount ?? 1 <= 1
      else { return }
      attributes.linkCount = 0
      attributes.changeTime = time
      record.attributes = attributes
    }
  }

  /// `path` and everything under it are gone: their inodes become orphans.
  func removeTree(at path: String) {
    state.withLock { state in detach(path, in: &state) }
  }

  /// `source` (and its subtree) now lives at `destination`; whatever was there is gone.
  func moveTree(from source: String, to destination: String) {
    state.withLock { state in
      guard source != destination else { return }
      // Two names of one file: rename(2) leaves both.
      if let moving = state.inodeByPath[source], state.inodeByPath[destination] == moving { return }
      detach(destination, in: &state)
      let moving = state.inodeByPath.subtree(source)
      for (oldPath, _) in moving { state.inodeByPath[oldPath] = nil }
      for (oldPath, inode) in moving {
        let newPath = destination + oldPath.dropFirst(source.count)
        state.inodeByPath[newPath] = inode
        state.records[inode]?.path = newPath
      }
    }
  }

  /// RENAME_EXCHANGE: `first` and `second` (with their subtrees) swap places.
  func exchangeTrees(_ first: String, _ second: String) {
    state.withLock { state in
      guard first != second else { return }
      let moving = [
        (state.inodeByPath.subtree(first), first, second),
        (state.inodeByPath.subtree(second), second, first),
      ]
      for (entries, _, _) in moving {
        for (path, _) in entries { state.inodeByPath[path] = nil }
      }
      for (entries, from, to) in moving {
        for (oldPath, inode) in entries {
          let newPath = to + oldPath.dropFirst(from.count)
          state.inodeByPath[newPath] = inode
          state.records[inode]?.path = newPath
        }
      }
    }
  }

  private func detach(_ path: String, in state: inout State) {
    let gone = state.inodeByPath.subtree(path)
    for (oldPath, inode) in gone {
      state.inodeByPath[oldPath] = nil
      invalidateOtherLinks(of: state.records[inode]?.attributes, except: inode, in: &state)
      state.records[inode]?.fetchedAt = .now - .seconds(1_000_000)  // nlink and ctime changed
      if (state.records[inode]?.names ?? 1) > 1 {
        // A hard link: the node lives on under its other name.
        state.records[inode]?.names -= 1
        if state.records[inode]?.path == oldPath {
          state.records[inode]?.path = state.inodeByPath.anyPath(of: inode)
        }
        continue
      }
      if let record = state.records[inode], record.lookups > 0 {
        state.records[inode]!.path = nil
      } else {
        state.records[inode] = nil
      }
    }
  }

  /// The number of `path`, if it has one.
  func inode(ofPath path: String) -> UInt64? {
    state.withLock { $0.inodeByPath[path] }
  }

  /// The children of `directory` the kernel holds (lookup count above 0), by name; a child
  /// whose type is not known counts as a directory.
  func heldChildren(of directory: String) -> [(name: String, inode: UInt64, isDirectory: Bool)] {
    state.withLock { state in
      state.inodeByPath.children(of: directory).compactMap { path, inode in
        guard let record = state.records[inode], record.lookups > 0 else { return nil }
        let isDirectory = (record.attributes?.type ?? .directory) == .directory
        return (RemotePath.name(of: path), inode, isDirectory)
      }
    }
  }

  /// How many inodes are known, for logs and tests.
  var count: Int { state.withLock { $0.records.count } }
}
