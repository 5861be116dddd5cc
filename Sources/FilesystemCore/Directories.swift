import Backend
import Glibc
import Synchronization

/// One entry of a directory listing as the kernel sees it.
public struct DirectoryEntry: Sendable {
  public var name: String
  public var inode: UInt64
  public var attributes: Glibc.stat
  /// `.` and `..`: `readdirplus` must not count lookups for them.
  public var isDotEntry: Bool
}

/// Open directory handles, each with the listing snapshot its `readdir` calls page through.
final class DirectoryHandles: Sendable {
  private struct State {
    var listings: [UInt64: [DirectoryEntry]] = [:]
    var nextHandle: UInt64 = 1
  }
  private let state = Mutex(State())

  func open() -> UInt64 {
    state.withLock { state in
      let handle = state.nextHandle
      state.nextHandle += 1
      state.listings[handle] = []
      return handle
    }
  }

  func snapshot(_ handle: UInt64) -> [DirectoryEntry]? {
    state.withLock { $0.listings[handle] }
  }

  func store(_ entries: [DirectoryEntry], for handle: UInt64) {
    state.withLock { $0.listings[handle] = entries }
  }

  func close(_ handle: UInt64) {
    _ = state.withLock { $0.listings.removeValue(forKey: handle) }
  }
}

/// What `opendir` gives the kernel.
public struct OpenedDirectory: Sendable {
  public var handle: UInt64
  /// The kernel may cache the listing it reads (FOPEN_CACHE_DIR): the directory cache is on.
  public var cacheListing: Bool
  /// The kernel may keep the listing it cached: we still hold the same fresh listing.
  public var keepCache: Bool
}

extension Filesystem {
  /// Local.
  public func openDirectory(_ inode: UInt64) throws -> OpenedDirectory {
    let path = try path(of: inode)
    live?.use(path)
    return OpenedDirectory(
      handle: directoryHandles.open(), cacheListing: directories.isEnabled,
      keepCache: directories.kernelCacheIsCurrent(path))
  }

  /// Local.
  public func releaseDirectory(_ handle: UInt64) {
    directoryHandles.close(handle)
  }

  /// The entries from position `offset` on (`.` and `..` first). Offset 0 takes a fresh snapshot
  /// (a new listing, or a cached one within the attribute timeout); later offsets page through
  /// the same snapshot, so entries are neither skipped nor repeated.
  public func readDirectory(inode: UInt64, handle: UInt64, offset: Int) async throws
    -> ArraySlice<DirectoryEntry>
  {
    var entries = directoryHandles.snapshot(handle) ?? []
    if offset == 0 || entries.isEmpty {
      entries = try await listing(of: inode)
      directoryHandles.store(entries, for: handle)
    }
    return entries.dropFirst(offset)
  }

  private func listing(of inode: UInt64) async throws -> [DirectoryEntry] {
    let path = try self.path(of: inode)
    let (children, generation) = try await directories.entries(of: path) { [backend] in
      try await backend.listDirectory(path)
    }
    directories.markServed(path, generation: generation)
    listAhead.start(after: path, entries: children, cache: directories, backend: backend)
    let directoryAttributes = try await currentAttributes(of: inode)
    let parentPath = RemotePath.parent(of: path)
    let parentInode = inodes.inode(for: parentPath, attributes: nil, countLookup: false)
    let parentAttributes = inodes.attributes(of: parentInode, maxAge: nil) ?? directoryAttributes

    var entries: [DirectoryEntry] = []
    entries.reserveCapacity(children.count + 2)
    entries.append(
      DirectoryEntry(
        name: ".", inode: inode,
        attributes: shownStat(for: directoryAttributes, inode: inode), isDotEntry: true))
    entries.append(
      DirectoryEntry(
        name: "..", inode: parentInode,
        attributes: shownStat(for: parentAttributes, inode: parentInode),
        isDotEntry: true))
    for child in children {
      let childInode = inodes.inode(
        for: RemotePath.join(path, child.name), attributes: child.attributes, countLookup: false)
      // A file this mount has open for writing shows its staged size, as getattr does.
      var attributes = child.attributes
      if let staging = openFiles.staging(of: childInode), let local = try? staging.status() {
        attributes.size = local.size
        attributes.modificationTime = local.modificationTime
        if staging.isDirty {
          attributes.changeTime = later(attributes.changeTime, local.changeTime)
        }
      }
      entries.append(
        DirectoryEntry(
          name: child.name, inode: childInode,
          attributes: shownStat(for: attributes, inode: childInode), isDotEntry: false))
    }
    return entries
  }
}
