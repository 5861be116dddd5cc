import Backend
import DataLayer
import Glibc
import Logging

/// An entry handed to the kernel: its inode number and attributes. The kernel now holds one more
/// lookup reference to `inode`.
public struct Entry: Sendable {
  public var inode: UInt64
  public var attributes: Glibc.stat
}

/// The POSIX filesystem the kernel sees, on top of a `RemoteFilesystem`: inode numbers and lookup
/// counts, attribute and directory caches, open handles and their staging files.
///
/// Every method may be called concurrently. Methods marked "local" never touch the network and
/// return quickly; the FUSE bridge calls them on its own threads.
public final class Filesystem: Sendable {
  public let configuration: FilesystemConfiguration
  let backend: any RemoteFilesystem
  /// What the backend does natively; the core derives the rest (inode numbers, link counts,
  /// times) and repairs what its uploads lose (special bits).
  let capabilities: RemoteCapabilities
  let reader: any FileReader
  let stagingArea: StagingArea
  let inodes: InodeTable
  let directories: DirectoryCache
  let openFiles = OpenFiles()
  let pageCacheVersions = PageCacheVersions()
  let directoryHandles = DirectoryHandles()
  let listAhead = DirectoryListAhead()
  let fileReadAhead = FileReadAhead()
  /// Set when the backend watches: its events invalidate caches.
  let live: LiveInvalidation?
  let logger: Logger

  /// `watcher` and `watch`: live invalidation from the sandbox's watch; `ownChanges`: what the
  /// backend records of our own changes (`ChangeObservingFilesystem`), whose echoes are skipped.
  public init(
    backend: any RemoteFilesystem, capabilities: RemoteCapabilities,
    configuration: FilesystemConfiguration, reader: (any FileReader)? = nil,
    watcher: (any RemoteWatching)? = nil, watch: WatchConfiguration? = nil,
    ownChanges: OwnChanges? = nil, logger: Logger
  ) throws {
    self.backend = backend
    self.capabilities = capabilities
    self.configuration = configuration
    self.inodes = InodeTable(linksByRemoteInode: capabilities.inodeNumbers)
    self.reader = reader ?? DirectFileReader(backend: backend)
    self.stagingArea = try StagingArea(
      backend: backend, directory: configuration.stagingParent,
      fillsFromWholeFile: !capabilities.rangedReads, logger: logger)
    self.directories = DirectoryCache(lifetime: configuration.attributeLifetime)
    if let watcher, let watch, watch.limit > 0 {
      live = LiveInvalidation(
        configuration: watch, watcher: watcher, ownChanges: ownChanges, inodes: inodes,
        directories: directories, logger: logger)
    } else {
      live = nil
    }
    self.logger = logger
  }

  /// Where invalidations for the kernel go, once the session exists.
  public func setKernelNotifier(_ notifier: any KernelNotifier) {
    live?.setNotifier(notifier)
  }

  /// Local. The kernel timeouts for `inode`'s attributes and for its name: the long ones of
  /// `WatchConfiguration` while a watch reports changes to it.
  public func kernelTimeouts(of inode: UInt64) -> (attribute: Double, entry: Double) {
    let ordinary = (configuration.attributeTimeout, configuration.entryTimeout)
    guard let live, let path = inodes.path(of: inode) else { return ordinary }
    guard live.isWatching(RemotePath.parent(of: path)) || live.isWatching(path) else {
      return ordinary
    }
    return (live.configuration.attributeTimeout, live.configuration.entryTimeout)
  }

  /// Local. `inode`'s attributes if they are younger than the kernel may keep them: in a watched
  /// folder the watch's longer timeout, since others' changes there drop them. A no-op rsync at
  /// 20 ms RTT otherwise stat'ed every file again (a rename makes the kernel ask for its
  /// attributes): 871 round trips, 19 s.
  func freshAttributes(of inode: UInt64) -> RemoteAttributes? {
    if let fresh = inodes.attributes(of: inode, maxAge: configuration.attributeLifetime) {
      return fresh
    }
    let watched = kernelTimeouts(of: inode).attribute
    guard watched > configuration.attributeTimeout else { return nil }
    return inodes.attributes(of: inode, maxAge: .milliseconds(Int64(watched * 1000)))
  }

  /// `observer` hears of each directory someone else changed in the sandbox (a cache below
  /// this one, such as the write-back view, drops what it holds of it).
  public func observeRemoteChanges(_ observer: @escaping @Sendable (_ directory: String) -> Void) {
    live?.addObserver(observer)
  }

  /// Local. Watches and invalidations so far, for `status`; nil without live invalidation.
  public var watchCounts:
    (watched: Int, active: Int, invalidations: Int, ownEchoes: Int, reestablished: Int)?
  { live?.counts }

  /// Call after the session ended and pending work finished.
  public func shutdown() {
    live?.stop()
    if openFiles.handleCount > 0 {
      logger.warning("\(openFiles.handleCount) files were still open at unmount")
    }
    reader.shutdown()
  }

  // MARK: - Names

  public func lookUp(parent: UInt64, name: String) async throws -> Entry {
    let directory = try self.path(of: parent)
    let path = try childPath(of: directory, name)
    live?.use(directory)
    var answer = directories.lookUp(name, in: directory)
    if case .unknown = answer, directories.listsForLookUp(in: directory) {
      // A listing that fails (a directory we may search but not read) leaves the stat to answer.
      _ = try? await directories.entries(of: directory) { [backend] in
        try await backend.listDirectory(directory)
      }
      answer = directories.lookUp(name, in: directory)
    }
    let attributes: RemoteAttributes
    switch answer {
    case .found(let cached): attributes = cached
    case .missing: throw FilesystemError.errno(ENOENT, "\(path) does not exist")
    case .unknown: attributes = try await backend.attributes(of: path)
    }
    return entry(for: path, attributes: attributes)
  }

  /// Local. The kernel dropped `count` lookup references to `inode`.
  public func forget(_ inode: UInt64, count: UInt64) {
    inodes.forget(inode, count: count)
  }

  /// Local. Counts one more kernel reference, for a `readdirplus` entry that made it into the reply.
  public func addLookup(_ inode: UInt64) {
    inodes.addLookup(inode)
  }

  public func attributes(of inode: UInt64) async throws -> Glibc.stat {
    shownStat(for: try await currentAttributes(of: inode), inode: inode)
  }

  /// Attributes as this mount sees them: a staging file's size and mtime win over the remote's.
  func currentAttributes(of inode: UInt64) async throws -> RemoteAttributes {
    if let staging = openFiles.staging(of: inode) {
      var attributes: RemoteAttributes
      if let cached = inodes.attributes(of: inode, maxAge: nil) {
        attributes = cached
      } else if let path = inodes.path(of: inode) {
        attributes = try await backend.attributes(of: path)
        inodes.store(attributes, for: inode)
      } else {
        throw FilesystemError.errno(ENOENT, "inode \(inode) was removed")
      }
      let local = try staging.status()
      attributes.size = local.size
      attributes.modificationTime = local.modificationTime
      if staging.isDirty { attributes.changeTime = later(attributes.changeTime, local.changeTime) }
      return attributes
    }
    if let fresh = freshAttributes(of: inode) { return fresh }
    guard let path = inodes.path(of: inode) else {
      // Removed through the mount but still open (fstat after unlink): the last known values.
      if let last = inodes.attributes(of: inode, maxAge: nil) { return last }
      throw FilesystemError.errno(ENOENT, "inode \(inode) was removed")
    }
    let attributes = try await backend.attributes(of: path)
    inodes.store(attributes, for: inode)
    return attributes
  }

  public func makeDirectory(parent: UInt64, name: String, mode: UInt32) async throws -> Entry {
    try requireWritable()
    let path = try childPath(parent, name)
    let created = try await backend.createDirectory(path, mode: mode & 0o7777)
    entryChanged(path, to: created.attributes, parent: created.parent)
    directories.installEmpty(path)
    return entry(for: path, attributes: created.attributes)
  }

  public func removeFile(parent: UInt64, name: String) async throws {
    try requireWritable()
    let path = try childPath(parent, name)
    forgetRemoved(path, parentNow: try await backend.removeFile(path), wasDirectory: false)
  }

  public func removeDirectory(parent: UInt64, name: String) async throws {
    try requireWritable()
    let path = try childPath(parent, name)
    forgetRemoved(path, parentNow: try await backend.removeDirectory(path), wasDirectory: true)
  }

  /// renameat2(2): flags RENAME_NOREPLACE and RENAME_EXCHANGE (`renameWithFlags`).
  public func rename(
    parent: UInt64, name: String, newParent: UInt64, newName: String, flags: UInt32
  ) async throws {
    try requireWritable()
    let source = try childPath(parent, name)
    let destination = try childPath(newParent, newName)
    try await renameWithFlags(source: source, destination: destination, flags: flags)
  }

  public func statistics() async throws -> statvfs {
    let remote = try await backend.filesystemStatistics()
    let blockSize: UInt64 = remote.blockSize ?? 4096
    var result = statvfs()
    result.f_bsize = UInt(blockSize)
    result.f_frsize = UInt(blockSize)
    result.f_blocks = fsblkcnt_t(remote.totalBlocks ?? remote.totalBytes / blockSize)
    let free = remote.totalBytes > remote.usedBytes ? remote.totalBytes - remote.usedBytes : 0
    result.f_bfree = fsblkcnt_t(remote.freeBlocks ?? free / blockSize)
    result.f_bavail = fsblkcnt_t(remote.availableBlocks ?? free / blockSize)
    result.f_files = fsfilcnt_t(remote.totalFiles ?? 0)
    result.f_ffree = fsfilcnt_t(remote.freeFiles ?? 0)
    result.f_favail = fsfilcnt_t(remote.availableFiles ?? remote.freeFiles ?? 0)
    result.f_namemax = UInt(remote.maximumNameLength ?? 255)
    return result
  }

  // MARK: - Helpers

  func path(of inode: UInt64) throws -> String {
    guard let path = inodes.path(of: inode) else {
      throw FilesystemError.errno(ENOENT, "inode \(inode) has no path (removed)")
    }
    return path
  }

  func childPath(_ parent: UInt64, _ name: String) throws -> String {
    try childPath(of: path(of: parent), name)
  }

  func childPath(of parentPath: String, _ name: String) throws -> String {
    guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(UInt8(ascii: "/")) else {
      throw FilesystemError.errno(EINVAL, "bad name \(name)")
    }
    guard name.utf8.count <= 255 else {
      throw FilesystemError.errno(ENAMETOOLONG, "name too long")
    }
    return RemotePath.join(parentPath, name)
  }

  /// Hands `path` to the kernel: one more lookup reference.
  func entry(for path: String, attributes: RemoteAttributes) -> Entry {
    let inode = inodes.inode(for: path, attributes: attributes, countLookup: true)
    return Entry(inode: inode, attributes: shownStat(for: attributes, inode: inode))
  }

  /// `path` was removed; `parentNow`: its directory's attributes after that, when known.
  func forgetRemoved(_ path: String, parentNow: RemoteAttributes?, wasDirectory: Bool) {
    otherLinksChanged(path)
    if !wasDirectory { inodes.lastNameRemoved(path, at: currentTime()) }
    inodes.removeTree(at: path)
    entryChanged(path, to: nil, parent: parentNow)
    // A removed directory was empty, so listings cached below it were stale already and
    // age out on their own; dropping just its own keeps rm -rf linear (no scan per rmdir).
    if wasDirectory { directories.invalidate(path) }
  }

  func requireWritable() throws {
    if configuration.readOnly { throw FilesystemError.readOnly }
  }
}

/// The later of a known ctime and a staging file's: a write or truncate there moves ctime.
func later(_ known: RemoteTime?, _ local: RemoteTime) -> RemoteTime {
  guard let known else { return local }
  return max(known, local)
}

/// The wall clock, as a remote time (what a change made here stamps).
func currentTime() -> RemoteTime {
  var time = timespec()
  clock_gettime(CLOCK_REALTIME, &time)
  return RemoteTime(seconds: Int64(time.tv_sec), nanoseconds: Int32(time.tv_nsec))
}
