import Backend
import Glibc

/// Where a staged file's bytes are: inside the journal, or in a data file of their own.
public struct StagedContent: Sendable, Equatable {
  public enum Location: Sendable, Equatable {
    case journal(offset: UInt64)
    case dataFile(String)
  }
  public var location: Location
  public var size: UInt64

  static let empty = StagedContent(location: .journal(offset: 0), size: 0)
}

/// A change to one name that the sandbox has not applied yet.
enum PendingChange: Sendable, Equatable {
  /// A regular file with this content.
  case file(StagedContent)
  /// A directory, made if missing.
  case directory
  case symlink(String)
  /// The remote entry as it is, with `PendingName.changes` applied.
  case attributes
  case removed
}

struct PendingName: Sendable {
  var change: PendingChange
  /// The entry as this mount shows it (nil for `.removed`).
  var attributes: RemoteAttributes?
  /// Mode, owner and times set explicitly after the entry was made (or on the remote entry).
  var changes = RemoteAttributeChanges()
  /// What the sandbox had under this name before our first change: an entry of another type is
  /// removed before ours is made.
  var remoteType: RemoteFileType?
  /// Bumped by every change, so the drain marks done only what it applied.
  var revision: UInt64
  /// Refused by the sandbox for good: kept (and shown) until a retry succeeds.
  var failure: String?
  /// Who made the entry here (create, mkdir, symlink): the sandbox makes it as them, so it gets
  /// their owner. nil: as the sandbox's own user (changes to existing entries, whose permission
  /// the kernel checked already, and every change when callers are not acted as).
  var caller: CallerIdentity?
}

/// A directory whose listing this mount answers itself while it has changes in flight: the
/// sandbox's listing when it was first touched, overlaid with the pending changes.
struct PinnedDirectory: Sendable {
  var remote: [String: RemoteAttributes]
  var pending: [String: PendingName] = [:]
  /// When the sandbox's listing was taken: an idle pin older than its lifetime is dropped, so
  /// changes made by others show again.
  var listedAt = ContinuousClock.now

  func entry(_ name: String) -> RemoteAttributes? {
    if let pending = pending[name] { return pending.attributes }
    return remote[name]
  }

  var entries: [RemoteEntry] {
    var result: [RemoteEntry] = []
    result.reserveCapacity(remote.count + pending.count)
    for (name, attributes) in remote where pending[name] == nil {
      result.append(RemoteEntry(name: name, attributes: attributes))
    }
    for (name, change) in pending {
      if let attributes = change.attributes {
        result.append(RemoteEntry(name: name, attributes: attributes))
      }
    }
    return result
  }

  var isEmptyListing: Bool {
    if remote.keys.contains(where: { pending[$0] == nil }) { return false }
    return !pending.values.contains { $0.attributes != nil }
  }
}

/// The tree as this mount shows it in write-back mode: the sandbox's, with our pending changes
/// on top. Not thread-safe: `WriteBackBackend` holds it under its lock, together with the
/// journal, so the journal's order is the order changes were made.
///
/// Invariant: every name with a pending change lives in a pinned directory, and a directory
/// made here is pinned until the drain made it, so nothing pending is ever looked for remotely.
struct LocalView: Sendable {
  private(set) var pinned: [String: PinnedDirectory] = [:]
  private var nextRevision: UInt64 = 1
  /// The caller of the change being applied (`JournalRecord.caller`): new entries are theirs.
  var caller: CallerIdentity?

  enum Resolution {
    /// The sandbox decides.
    case remote
    /// This view decides: the entry, or nil for "no such name".
    case local(RemoteAttributes?)
  }

  var isEmpty: Bool { pinned.isEmpty }

  var pendingCount: Int { pinned.values.reduce(0) { $0 + $1.pending.count } }

  /// Whether a change waits for the drain (one the sandbox refused does not).
  var hasChangesToApply: Bool {
    pinned.values.contains { directory in directory.pending.values.contains { $0.failure == nil } }
  }

  func isPinned(_ directory: String) -> Bool { pinned[directory] != nil }

  mutating func pin(_ directory: String, remote: [RemoteEntry]) {
    guard pinned[directory] == nil else { return }
    var names: [String: RemoteAttributes] = [:]
    names.reserveCapacity(remote.count)
    for entry in remote { names[entry.name] = entry.attributes }
    pinned[directory] = PinnedDirectory(remote: names)
  }

  /// `directory` changed in the sandbox by our own write-through: take its listing again
  /// (nil: it is gone), or drop it when nothing of ours is pending there.
  mutating func rebase(_ directory: String, remote: [RemoteEntry]?) {
    guard let current = pinned[directory] else { return }
    guard !current.pending.isEmpty else {
      pinned[directory] = nil
      return
    }
    var names: [String: RemoteAttributes] = [:]
    for entry in remote ?? [] { names[entry.name] = entry.attributes }
    pinned[directory]?.remote = names
    pinned[directory]?.listedAt = .now
  }

  /// Drops the pins older than `lifetime` that hold nothing pending, and any directory below
  /// them (whose entry would otherwise be answered from nowhere).
  mutating func unpinIdle(olderThan lifetime: Duration) {
    let now = ContinuousClock.now
    unpin(pinned.filter { $0.value.pending.isEmpty && now - $0.value.listedAt > lifetime })
  }

  /// Someone else changed `directory` in the sandbox: its listing is asked for again, unless
  /// changes of ours wait there.
  mutating func unpinChanged(_ directory: String) {
    guard let listing = pinned[directory], listing.pending.isEmpty else { return }
    unpin([directory: listing])
  }

  private mutating func unpin(_ stale: [String: PinnedDirectory]) {
    guard !stale.isEmpty else { return }
    for directory in stale.keys { pinned[directory] = nil }
    // A pinned directory whose parent is no longer pinned cannot keep its own attributes in
    // step: drop it too, unless it holds changes (then the parent stays, re-listed later).
    var dropped = true
    while dropped {
      dropped = false
      for (directory, listing) in pinned
      where directory != "/" && pinned[RemotePath.parent(of: directory)] == nil
        && listing.pending.isEmpty
      {
        pinned[directory] = nil
        dropped = true
      }
    }
  }

  func resolve(_ path: String) -> Resolution {
    guard !pinned.isEmpty, path != "/" else { return .remote }
    // A pinned ancestor that no longer holds the next directory down hides everything below.
    var ancestor = RemotePath.parent(of: path)
    while ancestor != "/" {
      let above = RemotePath.parent(of: ancestor)
      if let directory = pinned[above] {
        let entry = directory.entry(RemotePath.name(of: ancestor))
        if entry?.type != .directory { return .local(nil) }
      }
      ancestor = above
    }
    guard let directory = pinned[RemotePath.parent(of: path)] else { return .remote }
    return .local(directory.entry(RemotePath.name(of: path)))
  }

  func listing(of directory: String) -> [RemoteEntry]? {
    pinned[directory]?.entries
  }

  /// The entry at `path` when this view knows it.
  func entry(_ path: String) -> RemoteAttributes? {
    guard case .local(let attributes) = resolve(path) else { return nil }
    return attributes
  }

  func pendingName(_ path: String) -> PendingName? {
    pinned[RemotePath.parent(of: path)]?.pending[RemotePath.name(of: path)]
  }

  // MARK: - Changes. Callers pinned the parent directories first.

  mutating func createFile(_ path: String, attributes: RemoteAttributes, exclusive: Bool)
    throws -> RemoteAttributes
  {
    if let existing = try existingEntry(path) {
      if exclusive { throw RemoteError(errno: EEXIST, "\(path) exists") }
      guard existing.type != .directory else {
        throw RemoteError(errno: EISDIR, "\(path) is a directory")
      }
      return existing
    }
    let attributes = owned(attributes, in: RemotePath.parent(of: path))
    set(path, .file(.empty), attributes: attributes, caller: caller)
    touch(RemotePath.parent(of: path), now: attributes.modificationTime)
    return attributes
  }

  /// New content for the file at `path` (made if it is gone, as an upload would).
  mutating func putContent(_ path: String, _ content: StagedContent, modificationTime: RemoteTime)
    throws -> RemoteAttributes
  {
    let existing = try existingEntry(path)
    if existing?.type == .directory { throw RemoteError(errno: EISDIR, "\(path) is a directory") }
    var attributes =
      existing
      ?? RemoteAttributes(
        type: .regular, size: 0, permissions: 0o644, modificationTime: modificationTime)
    attributes.type = .regular
    attributes.size = content.size
    attributes.modificationTime = modificationTime
    attributes.changeTime = modificationTime
    attributes.blocks = (content.size + 511) / 512
    let previous = pendingName(path)
    set(
      path, .file(content), attributes: attributes,
      changes: previous?.changes ?? RemoteAttributeChanges(), caller: previous?.caller)
    return attributes
  }

  mutating func makeDirectory(_ path: String, attributes: RemoteAttributes) throws
    -> RemoteAttributes
  {
    if try existingEntry(path) != nil { throw RemoteError(errno: EEXIST, "\(path) exists") }
    var attributes = owned(attributes, in: RemotePath.parent(of: path))
    // Linux: a directory made in a setgid directory is setgid too.
    if let parent = entry(RemotePath.parent(of: path)), parent.permissions & 0o2000 != 0 {
      attributes.permissions |= 0o2000
    }
    set(path, .directory, attributes: attributes, caller: caller)
    touch(RemotePath.parent(of: path), now: attributes.modificationTime, subdirectories: 1)
    // A directory removed and made again keeps its pinned listing: the removals of its old
    // entries are still to be applied, and they leave it empty.
    if pinned[path] == nil { pinned[path] = PinnedDirectory(remote: [:]) }
    return attributes
  }

  mutating func makeSymlink(_ path: String, target: String, attributes: RemoteAttributes) throws
    -> RemoteAttributes
  {
    if try existingEntry(path) != nil { throw RemoteError(errno: EEXIST, "\(path) exists") }
    let attributes = owned(attributes, in: RemotePath.parent(of: path))
    set(path, .symlink(target), attributes: attributes, caller: caller)
    touch(RemotePath.parent(of: path), now: attributes.modificationTime)
    return attributes
  }

  /// A new entry's owner as Linux gives it: the caller's uid, and the folder's group when the
  /// folder is setgid, else the caller's gid. Without a caller: as it was given.
  private func owned(_ attributes: RemoteAttributes, in directory: String) -> RemoteAttributes {
    guard let caller else { return attributes }
    var attributes = attributes
    attributes.uid = caller.uid
    attributes.gid = caller.gid
    if let parent = directory == "/" ? nil : entry(directory), parent.permissions & 0o2000 != 0,
      let group = parent.gid
    {
      attributes.gid = group
    }
    return attributes
  }

  mutating func removeFile(_ path: String, now: RemoteTime) throws {
    guard let existing = try existingEntry(path) else {
      throw RemoteError(errno: ENOENT, "\(path) does not exist")
    }
    if existing.type == .directory { throw RemoteError(errno: EISDIR, "\(path) is a directory") }
    remove(path)
    touch(RemotePath.parent(of: path), now: now)
  }

  /// The caller pinned `path` itself too, so its listing is known.
  mutating func removeDirectory(_ path: String, now: RemoteTime) throws {
    guard let existing = try existingEntry(path) else {
      throw RemoteError(errno: ENOENT, "\(path) does not exist")
    }
    guard existing.type == .directory else {
      throw RemoteError(errno: ENOTDIR, "\(path) is not a directory")
    }
    guard pinned[path]?.isEmptyListing ?? false else {
      throw RemoteError(errno: ENOTEMPTY, "\(path) is not empty")
    }
    // Its pinned listing stays: a change still on its way there gets its removal.
    remove(path)
    touch(RemotePath.parent(of: path), now: now, subdirectories: -1)
  }

  /// Mode, owner and times (never size: that changes content, and goes to the sandbox).
  mutating func setAttributes(_ path: String, _ changes: RemoteAttributeChanges, now: RemoteTime)
    throws -> RemoteAttributes
  {
    guard var attributes = try existingEntry(path) else {
      throw RemoteError(errno: ENOENT, "\(path) does not exist")
    }
    if changes.mode != nil, attributes.type == .symlink {
      throw RemoteError(errno: EOPNOTSUPP, "a symlink has no mode")
    }
    if let mode = changes.mode { attributes.permissions = mode & 0o7777 }
    if let uid = changes.uid { attributes.uid = uid }
    if let gid = changes.gid { attributes.gid = gid }
    if let time = changes.accessTime { attributes.accessTime = time.resolved(now: now) }
    if let time = changes.modificationTime {
      attributes.modificationTime = time.resolved(now: now)
    }
    attributes.changeTime = now
    var merged = pendingName(path)?.changes ?? RemoteAttributeChanges()
    if let mode = changes.mode { merged.mode = mode }
    if let uid = changes.uid { merged.uid = uid }
    if let gid = changes.gid { merged.gid = gid }
    // Resolved now: a replay must set the time the user saw, not the time of the replay.
    if changes.accessTime != nil { merged.accessTime = attributes.accessTime.map { .set($0) } }
    if changes.modificationTime != nil {
      merged.modificationTime = .set(attributes.modificationTime)
    }
    let change = pendingName(path)?.change ?? .attributes
    set(path, change, attributes: attributes, changes: merged, caller: pendingName(path)?.caller)
    return attributes
  }

  /// A rename this view can make alone: the source's content is here (a file or symlink made
  /// or written through the mount) and the destination is no directory. nil: it cannot.
  mutating func renameLocally(
    from source: String, to destination: String, noReplace: Bool, now: RemoteTime
  ) throws -> RemoteAttributes? {
    guard let moving = pendingName(source), var attributes = moving.attributes else { return nil }
    switch moving.change {
    case .file, .symlink: break
    default: return nil
    }
    if source == destination { return attributes }
    if let replaced = try existingEntry(destination) {
      if noReplace { throw RemoteError(errno: EEXIST, "\(destination) exists") }
      if replaced.type == .directory || (replaced.linkCount ?? 1) > 1 { return nil }
    }
    if try existingEntry(source) == nil { return nil }
    remove(source)
    attributes.changeTime = now
    set(
      destination, moving.change, attributes: attributes, changes: moving.changes,
      caller: moving.caller)
    touch(RemotePath.parent(of: source), now: now)
    touch(RemotePath.parent(of: destination), now: now)
    return attributes
  }

  /// The sandbox applied `revision` of the change to `path`, which now is `result` there.
  /// A name changed again since keeps its newer change; one removed here while the sandbox
  /// was making it gets a removal, so nothing we dropped stays behind there.
  mutating func markApplied(_ path: String, revision: UInt64, result: RemoteAttributes?) {
    let directory = RemotePath.parent(of: path)
    let name = RemotePath.name(of: path)
    guard pinned[directory] != nil else { return }
    pinned[directory]?.remote[name] = result
    if let current = pinned[directory]?.pending[name] {
      if current.revision == revision {
        pinned[directory]?.pending[name] = nil
      } else {
        pinned[directory]?.pending[name]?.remoteType = result?.type
        // Changed since the pass began (its children's times): the sandbox has the directory
        // now, so what is left is its attributes, not a second mkdir (one by one, as it exists).
        if current.change == .directory, result?.type == .directory {
          pinned[directory]?.pending[name]?.change = .attributes
          if current.changes.mode == nil {
            pinned[directory]?.pending[name]?.changes.mode = current.attributes?.permissions
          }
        }
      }
    } else if result != nil {
      set(path, .removed, attributes: nil)
    }
  }

  /// What the sandbox had at `path` when this view last learned it (its listing, or our own
  /// change applied since).
  func remoteEntry(_ path: String) -> RemoteAttributes? {
    pinned[RemotePath.parent(of: path)]?.remote[RemotePath.name(of: path)]
  }

  /// The sandbox now has `attributes` at `path` (made by the drain beside our changes).
  mutating func noteRemote(_ path: String, _ attributes: RemoteAttributes?) {
    guard path != "/" else { return }  // The root is in no listing.
    pinned[RemotePath.parent(of: path)]?.remote[RemotePath.name(of: path)] = attributes
  }

  mutating func markFailed(_ path: String, revision: UInt64, reason: String) {
    let directory = RemotePath.parent(of: path)
    let name = RemotePath.name(of: path)
    guard pinned[directory]?.pending[name]?.revision == revision else { return }
    pinned[directory]?.pending[name]?.failure = reason
  }

  /// `change` to `path` failed in a way that may have applied it (the connection dropped after
  /// the request went out): the sandbox may have the entry now. A later removal or rename away
  /// must remove it there too, and one made meanwhile gets a removal now (removing a name that
  /// is not there is harmless).
  mutating func markMaybeApplied(_ path: String, _ change: PendingChange) {
    let type: RemoteFileType
    switch change {
    case .file: type = .regular
    case .directory: type = .directory
    case .symlink: type = .symlink
    case .attributes, .removed: return
    }
    let directory = RemotePath.parent(of: path)
    let name = RemotePath.name(of: path)
    guard let listing = pinned[directory], listing.remote[name] == nil else { return }
    if let pending = listing.pending[name] {
      if pending.remoteType == nil { pinned[directory]?.pending[name]?.remoteType = type }
    } else {
      set(path, .removed, attributes: nil)
      pinned[directory]?.pending[name]?.remoteType = type
    }
  }

  mutating func discard(_ path: String) {
    pinned[RemotePath.parent(of: path)]?.pending[RemotePath.name(of: path)] = nil
  }

  mutating func clearFailure(_ path: String) {
    pinned[RemotePath.parent(of: path)]?.pending[RemotePath.name(of: path)]?.failure = nil
  }

  /// Every pending change, with its path.
  func snapshot() -> [(path: String, pending: PendingName)] {
    var result: [(String, PendingName)] = []
    for (directory, pinnedDirectory) in pinned {
      for (name, pending) in pinnedDirectory.pending {
        result.append((RemotePath.join(directory, name), pending))
      }
    }
    return result
  }

  /// What `restore` needs to undo a change to `paths` (a journal that could not be written).
  struct Saved {
    fileprivate var names: [(directory: String, name: String, pending: PendingName?)] = []
    fileprivate var directories: [(String, PinnedDirectory?)] = []
  }

  func save(_ paths: [String]) -> Saved {
    var saved = Saved()
    for path in paths {
      let directory = RemotePath.parent(of: path)
      let name = RemotePath.name(of: path)
      saved.names.append((directory, name, pinned[directory]?.pending[name]))
      saved.directories.append((path, pinned[path]))
    }
    return saved
  }

  mutating func restore(_ saved: Saved) {
    for (directory, name, pending) in saved.names.reversed() {
      pinned[directory]?.pending[name] = pending
    }
    for (path, directory) in saved.directories.reversed() { pinned[path] = directory }
  }

  /// A name came or went in `directory`: its mtime and ctime are now, as on Linux. The new
  /// mtime is sent as an explicit change (after the directory's contents, in the drain's last
  /// step), because the drain may make the sandbox's copy without the change that moved it (a
  /// file made and renamed away never reaches the sandbox, nor moves its directory's mtime).
  /// `subdirectories`: directories added (or removed, negative): its nlink moves with them.
  mutating func touch(_ directory: String, now: RemoteTime, subdirectories: Int = 0) {
    guard directory != "/" else { return }
    let parent = RemotePath.parent(of: directory)
    let name = RemotePath.name(of: directory)
    guard let listing = pinned[parent] else { return }
    let pending = listing.pending[name]
    guard pending?.change != .removed,
      var attributes = pending?.attributes ?? listing.remote[name]
    else { return }
    attributes.modificationTime = now
    attributes.changeTime = now
    attributes.linkCount = attributes.linkCount.map { UInt32(max(2, Int($0) + subdirectories)) }
    var changes = pending?.changes ?? RemoteAttributeChanges()
    changes.modificationTime = .set(now)
    set(
      directory, pending?.change ?? .attributes, attributes: attributes, changes: changes,
      caller: pending?.caller)
  }

  // MARK: - Helpers

  /// The entry at `path`, or nil; ENOENT/ENOTDIR when its directory is missing here.
  private func existingEntry(_ path: String) throws -> RemoteAttributes? {
    switch resolve(path) {
    case .local(let entry):
      guard pinned[RemotePath.parent(of: path)] != nil else {
        throw RemoteError(errno: ENOENT, "\(RemotePath.parent(of: path)) does not exist")
      }
      return entry
    case .remote:
      throw RemoteError(errno: EIO, "\(RemotePath.parent(of: path)) is not pinned")
    }
  }

  private mutating func set(
    _ path: String, _ change: PendingChange, attributes: RemoteAttributes?,
    changes: RemoteAttributeChanges = RemoteAttributeChanges(), caller: CallerIdentity? = nil
  ) {
    let directory = RemotePath.parent(of: path)
    let name = RemotePath.name(of: path)
    let previous = pinned[directory]?.pending[name]
    let remoteType = previous.map(\.remoteType) ?? pinned[directory]?.remote[name]?.type
    pinned[directory]?.pending[name] = PendingName(
      change: change, attributes: attributes, changes: changes, remoteType: remoteType,
      revision: nextRevision, caller: caller)
    nextRevision += 1
  }

  /// Gone here; a name the sandbox never had needs no change there at all.
  private mutating func remove(_ path: String) {
    let directory = RemotePath.parent(of: path)
    let name = RemotePath.name(of: path)
    let previous = pinned[directory]?.pending[name]
    let remoteType = previous.map(\.remoteType) ?? pinned[directory]?.remote[name]?.type
    if remoteType == nil {
      pinned[directory]?.pending[name] = nil
    } else {
      set(path, .removed, attributes: nil)
    }
  }
}

extension RemoteTimeChange {
  /// The instant this change sets, `now` standing for UTIME_NOW.
  func resolved(now: RemoteTime) -> RemoteTime {
    switch self {
    case .now: now
    case .set(let time): time
    }
  }
}
