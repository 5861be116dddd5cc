import Backend
import Foundation
import Glibc
import Logging
import Synchronization

public struct WriteBackConfiguration: Sendable {
  /// Holds the journal and large files' data; one folder per sandbox and remote root.
  public var stateDirectory: String
  /// Changes applied to the sandbox at once.
  public var parallelChanges = 8
  /// How long a drain waits for more changes to gather before it starts, and again while
  /// they keep coming, up to `longestGather` or `fullPass` changes.
  public var gatherDelay: Duration = .milliseconds(20)
  /// A drain beside a running rsync otherwise makes a pass, and its commands, per few files.
  public var longestGather: Duration = .milliseconds(500)
  public var fullPass = 256
  /// Files bigger than this are written through (after the journal drained), not staged twice.
  public var writeThroughSize: UInt64 = 64 << 20
  /// How long a directory listing the view took stays after its changes drained: the
  /// attribute timeout, so others' changes show as late as with the caches, and a mount with
  /// long timeouts keeps working locally while the sandbox is away.
  public var pinLifetime: Duration = .seconds(1)

  public init(stateDirectory: String) {
    self.stateDirectory = stateDirectory
  }
}

/// Hard links made through the mount, as groups of names: a backend without link counts
/// (stock envd) cannot say which names share a file.
struct LinkGroups: Sendable {
  private var groupOf: [String: Int] = [:]
  private var members: [Int: Set<String>] = [:]
  private var nextGroup = 1

  func otherNames(of path: String) -> [String] {
    guard let group = groupOf[path] else { return [] }
    return members[group, default: []].filter { $0 != path }
  }

  mutating func link(_ source: String, _ destination: String) {
    remove(destination)
    let group = groupOf[source] ?? nextGroup
    if group == nextGroup { nextGroup += 1 }
    for name in [source, destination] {
      groupOf[name] = group
      members[group, default: []].insert(name)
    }
  }

  mutating func remove(_ path: String) {
    guard let group = groupOf.removeValue(forKey: path) else { return }
    members[group]?.remove(path)
    if members[group]?.isEmpty ?? false { members[group] = nil }
  }

  /// Names at or below `source` move to `destination` (a directory moves its contents).
  mutating func rename(_ source: String, _ destination: String, exchange: Bool) {
    guard !groupOf.isEmpty else { return }
    func moved(_ path: String, from: String, to: String) -> String? {
      if path == from { return to }
      if path.hasPrefix(from + "/") { return to + path.dropFirst(from.count) }
      return nil
    }
    var renamed: [(String, String?)] = []
    for path in groupOf.keys {
      if let target = moved(path, from: source, to: destination) {
        renamed.append((path, target))
      } else if let target = moved(path, from: destination, to: source) {
        renamed.append((path, exchange ? target : nil))
      }
    }
    let groups = renamed.map { (groupOf[$0.0], $0.1) }
    for (path, _) in renamed { remove(path) }
    for (group, target) in groups {
      guard let group, let target else { continue }
      groupOf[target] = group
      members[group, default: []].insert(target)
    }
  }
}

/// Write-back: a `RemoteFilesystem` that answers changes from a local view at once, keeps them
/// in a durable journal, and applies them to the sandbox (`inner`) in the background.
///
/// Changes it can make alone (create, put a file's content, mkdir, symlink, unlink, rmdir,
/// setattr without size, rename of a file whose content is here) go to the view and journal.
/// The rest (rename of a remote entry, link, mknod, truncate, a write into part of a remote
/// file) first drain the journal, then go to the sandbox, so the order of changes holds.
/// Reads, stats and listings see the view first, so a process sees its own writes at once.
public final class WriteBackBackend: RemoteFilesystem {
  let inner: any RemoteFilesystem
  private let unsynced: UnsyncedDirectories?
  let journal: Journal
  public let configuration: WriteBackConfiguration
  let logger: Logger
  let state = Mutex(State())

  struct State {
    var view = LocalView()
    var drainScheduled = false
    /// Changes journaled since the mount began: a drain gathers while it grows.
    var journaled = 0
    var retryDelay: Duration = .zero
    /// Woken when a drain pass finds nothing left to apply.
    var idleWaiters: [CheckedContinuation<Void, any Error>] = []
    /// The drain's pause while changes gather; a waiter cuts it short.
    var gatherPause: Task<Void, Never>?
    var appliedChanges = 0
    var appliedBytes: UInt64 = 0
    var conflicts: [String] = []
    /// The sandbox takes batches, until it says it does not.
    var batches = true
    /// Changes under way: the view keeps its pins while any is.
    var leases = 0
    /// Names of hard links made through this mount: what a backend without link counts
    /// (stock envd) cannot tell.
    var links = LinkGroups()
    var lastExpiry = ContinuousClock.now
  }

  /// The view, after dropping pins that aged out (at most every 100 ms): so others' changes in
  /// a folder we changed show again once its listing is as old as the attribute timeout.
  func currentView<T>(_ body: (LocalView) throws -> T) rethrows -> T {
    try state.withLock { state in
      let now = ContinuousClock.now
      if state.leases == 0, now - state.lastExpiry > .milliseconds(100), !state.view.isEmpty {
        state.lastExpiry = now
        state.view.unpinIdle(olderThan: configuration.pinLifetime)
      }
      return try body(state.view)
    }
  }

  /// `unsynced`: told of every change `inner` makes (`ChangeObservingFilesystem`); nil: every
  /// directory fsync goes to the sandbox.
  public init(
    inner: any RemoteFilesystem, configuration: WriteBackConfiguration,
    unsynced: UnsyncedDirectories? = nil, logger: Logger
  ) throws {
    self.inner = inner
    self.unsynced = unsynced
    self.configuration = configuration
    self.logger = logger
    self.journal = try Journal(directory: configuration.stateDirectory)
  }

  /// Rebuilds the view from what the journal holds (a previous mount that stopped before its
  /// changes reached the sandbox), then starts applying it. Returns the number of changes.
  @discardableResult
  public func replayJournal() async throws -> Int {
    let records = try journal.replay()
    guard !records.isEmpty else { return 0 }
    logger.notice(
      "replaying \(records.count) journaled changes from \(configuration.stateDirectory)")
    for (record, contentOffset) in records {
      do {
        try await pinParents(of: record)
        let content = storedContent(of: record, inlineAt: contentOffset)
        _ = try state.withLock { state in
          try Self.change(for: record, content: content)(&state.view)
        }
      } catch {
        logger.debug("replay: \(record.operation.rawValue) \(record.path): \(error)")
      }
    }
    scheduleDrain()
    return records.count
  }

  /// Someone else changed `directory` in the sandbox (a watch event): what the view pinned
  /// of it is stale, unless a change of ours is under way.
  public func remoteChanged(in directory: String) {
    state.withLock { state in
      guard state.leases == 0 else { return }
      state.view.unpinChanged(directory)
    }
  }

  // MARK: - Reads

  public func attributes(of path: String) async throws -> RemoteAttributes {
    switch currentView({ $0.resolve(path) }) {
    case .local(let attributes?): return attributes
    case .local(nil): throw RemoteError(errno: ENOENT, "\(path) does not exist")
    case .remote: return try await inner.attributes(of: path)
    }
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    let local = currentView { view -> ([RemoteEntry]?, LocalView.Resolution) in
      (view.listing(of: path), view.resolve(path))
    }
    if let listing = local.0 { return listing }
    switch local.1 {
    case .local(nil): throw RemoteError(errno: ENOENT, "\(path) does not exist")
    case .local(let attributes?) where attributes.type != .directory:
      throw RemoteError(errno: ENOTDIR, "\(path) is not a directory")
    default: return try await inner.listDirectory(path)
    }
  }

  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64)
    async throws -> [UInt8]
  {
    if let bytes = try localContent(path, offset: offset, length: length) { return bytes }
    return try await inner.read(path, offset: offset, length: length, expectedSize: expectedSize)
  }

  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    guard let size = pendingSize(path),
      let bytes = try localContent(path, offset: 0, length: Int(size))
    else {
      return try await inner.download(path, expectedSize: expectedSize, to: localPath)
    }
    try Data(bytes).write(to: URL(fileURLWithPath: localPath))
    return UInt64(bytes.count)
  }

  public func readLink(_ path: String) async throws -> String {
    if case .symlink(let target)? = state.withLock({ $0.view.pendingName(path)?.change }) {
      return target
    }
    if case .local(nil) = state.withLock({ $0.view.resolve(path) }) {
      throw RemoteError(errno: ENOENT, "\(path) does not exist")
    }
    return try await inner.readLink(path)
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    try await inner.filesystemStatistics()
  }

  public func capabilities() async -> RemoteCapabilities {
    await inner.capabilities()
  }

  /// Bytes of the file's staged content (nil: the sandbox has the content).
  private func localContent(_ path: String, offset: UInt64, length: Int) throws -> [UInt8]? {
    try state.withLock { state in
      if case .local(nil) = state.view.resolve(path) {
        throw RemoteError(errno: ENOENT, "\(path) does not exist")
      }
      guard case .file(let content)? = state.view.pendingName(path)?.change else { return nil }
      guard offset < content.size else { return [] }
      let count = Int(min(UInt64(length), content.size - offset))
      return try read(content, at: offset, count: count)
    }
  }

  private func pendingSize(_ path: String) -> UInt64? {
    state.withLock { state in
      guard case .file(let content)? = state.view.pendingName(path)?.change else { return nil }
      return content.size
    }
  }

  func read(_ content: StagedContent, at offset: UInt64, count: Int) throws -> [UInt8] {
    guard count > 0 else { return [] }
    switch content.location {
    case .journal(let start):
      return try journal.read(at: start + offset, count: count)
    case .dataFile(let file):
      let data: Data
      do {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        data = try handle.read(upToCount: count) ?? Data()
      } catch {
        throw LocalError(foundation: error, "read", "staged data \(file)")
      }
      guard data.count == count else {
        throw LocalError(errno: EIO, "read", "staged data \(file)", detail: "shorter than expected")
      }
      return [UInt8](data)
    }
  }

  // MARK: - Changes made locally

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    if exclusive, case .remote = state.withLock({ $0.view.resolve(path) }),
      (try? await inner.attributes(of: path)) != nil
    {
      // Not in any folder this view holds, and the sandbox has it: an O_CREAT open of an
      // existing file (a fresh mount's `>>` or dd) costs a stat, not listings up to the root.
      throw RemoteError(errno: EEXIST, "\(path) exists")
    }
    var record = JournalRecord(.create, path)
    record.mode = mode & 0o7777
    record.exclusive = exclusive
    return try await commitEntry(record)
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    var record = JournalRecord(.mkdir, path)
    record.mode = mode & 0o7777
    return try await commitEntry(record)
  }

  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    _ = try await createDirectory(path, mode: mode)
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    var record = JournalRecord(.symlink, path)
    record.target = target
    return try await commitEntry(record)
  }

  @discardableResult
  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    try await leased {
      try await pin(RemotePath.parent(of: path))
      if hasOtherNames(path) {
        let parent = try await writeThrough(touching: [path]) {
          try await self.inner.removeFile(path)
        }
        state.withLock { $0.links.remove(path) }
        return parent
      }
      return try await commit(
        JournalRecord(.unlink, path), pinning: [RemotePath.parent(of: path)]
      ).parent
    }
  }

  @discardableResult
  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    // Its own listing too: rmdir must know it is empty.
    try await commit(JournalRecord(.rmdir, path), pinning: [RemotePath.parent(of: path), path])
      .parent
  }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    try await leased { try await setAttributesLeased(path, changes) }
  }

  private func setAttributesLeased(_ path: String, _ changes: RemoteAttributeChanges)
    async throws -> RemoteAttributes
  {
    try await pin(RemotePath.parent(of: path))
    if changes.size != nil || hasOtherNames(path) {
      return try await writeThrough(touching: [path]) {
        try await self.inner.setAttributes(path, changes)
      }
    }
    try await settleOtherCaller(path)
    var record = JournalRecord(.setattr, path)
    record.mode = changes.mode.map { $0 & 0o7777 }
    record.uid = changes.uid
    record.gid = changes.gid
    // Resolved now, so a replay sets the times the caller saw.
    let now = Self.now()
    record.accessTime = changes.accessTime.map { JournalRecord.time($0.resolved(now: now)) }
    record.modificationTime = changes.modificationTime.map {
      JournalRecord.time($0.resolved(now: now))
    }
    return try await commit(record, pinning: [RemotePath.parent(of: path)]).attributes!
  }

  public func rename(from source: String, to destination: String) async throws {
    try await rename(from: source, to: destination, flags: [])
  }

  @discardableResult
  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    let linkedDestination = state.withLock { !$0.links.otherNames(of: destination).isEmpty }
    if !flags.contains(.exchange) && !linkedDestination {
      let moved = try await leased { () async throws -> RemoteNameChange? in
        try await pin(RemotePath.parent(of: source))
        try await pin(RemotePath.parent(of: destination))
        var record = JournalRecord(.rename, source)
        record.destination = destination
        record.noReplace = flags.contains(.noReplace) ? true : nil
        let committed = try commitToJournal(record, content: [], requireResult: true)
        guard let attributes = committed.attributes else { return nil }
        let destinationParent = state.withLock {
          $0.view.entry(RemotePath.parent(of: destination))
        }
        return RemoteNameChange(
          attributes: attributes, parent: committed.parent, destinationParent: destinationParent)
      }
      if let moved { return moved }
    }
    if !flags.contains(.exchange),
      let answer = try await renameRemoteFile(source, destination, flags)
    {
      return answer
    }
    let answer = try await writeThrough(touching: [source, destination]) {
      try await self.inner.rename(from: source, to: destination, flags: flags)
    }
    state.withLock { $0.links.rename(source, destination, exchange: flags.contains(.exchange)) }
    return answer
  }

  /// A whole file's new content (an upload, or offset writes that cover it from scratch).
  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    try await leased { try await uploadLeased(path, from: localPath) }
  }

  private func uploadLeased(_ path: String, from localPath: String?) async throws
    -> RemoteEntryState?
  {
    let size = localPath.map(Self.fileSize) ?? 0
    try await pin(RemotePath.parent(of: path))
    if size > configuration.writeThroughSize || hasOtherNames(path) {
      return try await writeThrough(touching: [path]) {
        try await self.inner.upload(path, from: localPath)
      }
    }
    return RemoteEntryState(try await put(path, from: localPath, size: size))
  }

  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await leased {
      try await writeRangesLeased(
        path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
  }

  private func writeRangesLeased(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    let fromScratch = truncateFirst == 0 && ranges == [0..<size]
    let heldNowhere = state.withLock { state in
      if case .remote = state.view.resolve(path) {
        return state.links.otherNames(of: path).isEmpty
      }
      return false
    }
    if !fromScratch && heldNowhere {
      // Nothing of this file is pending (no folder of its is held): no listing first.
      return try await writeInPlace(
        path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
    try await pin(RemotePath.parent(of: path))
    if fromScratch && size <= configuration.writeThroughSize && !hasOtherNames(path) {
      return try await put(path, from: localPath, size: size)
    }
    if pendingSize(path) != nil {
      // Staged content: the caller completes the file from it and puts it whole.
      throw RemoteError(errno: EOPNOTSUPP, "\(path) is staged whole")
    }
    if !hasOtherNames(path) {
      return try await writeInPlace(
        path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
    return try await writeThrough(touching: [path]) {
      try await self.inner.writeRanges(
        path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
  }

  /// In place, in order, after everything journaled before: the answer is the file's new entry
  /// (its folder did not change), which the view and its other names' held listings take.
  private func writeInPlace(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await drain()
    let attributes = try await inner.writeRanges(
      path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    guard let attributes else {
      await refreshPinned(around: [path])
      return nil
    }
    state.withLock { state in
      if state.view.pendingName(path) == nil { state.view.noteRemote(path, attributes) }
    }
    if (attributes.linkCount ?? 1) > 1, let inode = attributes.inode {
      await refreshPinned(around: [path], linkedTo: [inode])
    }
    return attributes
  }

  // MARK: - Changes that go to the sandbox in order

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    let linked = try await writeThrough(touching: [source, destination]) {
      try await self.inner.link(from: source, to: destination)
    }
    state.withLock { $0.links.link(source, destination) }
    return linked
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    try await writeThrough(touching: [path]) {
      try await self.inner.makeNode(path, mode: mode, device: device)
    }
  }

  /// fsync: this file's changes and everything before them reach the sandbox first.
  /// A change the sandbox refused (parked) fails it with EIO: it cannot promise what came after.
  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    try await drain(reportingFailures: true)
    if case .local(nil) = state.withLock({ $0.view.resolve(path) }) { return }
    try await inner.synchronize(path, dataOnly: dataOnly)
  }

  public func synchronizeDirectory(_ path: String) async throws {
    guard let unsynced else { return try await synchronize(path, dataOnly: false) }
    try await drain(reportingFailures: true)
    if case .local(nil) = state.withLock({ $0.view.resolve(path) }) { return }
    guard unsynced.take(path) else { return }
    do {
      try await inner.synchronizeDirectory(path)
    } catch {
      unsynced.noteAgain(path)
      throw error
    }
  }

  /// A file the sandbox has (no directory, no other names) renamed there, in order: the view
  /// moves the name in the listings it holds, with the server's answer, instead of listing the
  /// folders again (which cost more than the rename). nil: not such a file.
  private func renameRemoteFile(_ source: String, _ destination: String, _ flags: RemoteRenameFlags)
    async throws -> RemoteNameChange?
  {
    try await drain()
    let moving = state.withLock { state -> RemoteAttributes? in
      guard state.view.pendingName(source) == nil, state.view.pendingName(destination) == nil,
        let entry = state.view.entry(source), entry.type != .directory,
        (entry.linkCount ?? 1) <= 1, state.links.otherNames(of: source).isEmpty,
        state.links.otherNames(of: destination).isEmpty
      else { return nil }
      if let replaced = state.view.entry(destination),
        replaced.type == .directory || (replaced.linkCount ?? 1) > 1
      {
        return nil
      }
      return entry
    }
    guard let moving else { return nil }
    let answer = try await inner.rename(from: source, to: destination, flags: flags)
    state.withLock { state in
      state.view.noteRemote(source, nil)
      state.view.noteRemote(destination, answer.attributes ?? moving)
      let sourceParent = RemotePath.parent(of: source)
      let destinationParent = RemotePath.parent(of: destination)
      // Without the server's word on the folders (stock envd), their mtime moves here, as it
      // did there.
      let now = Self.now()
      if let parent = answer.parent {
        state.view.noteRemote(sourceParent, parent)
      } else {
        state.view.touch(sourceParent, now: now)
      }
      // One folder: the answer's `parent` was all of it. A touch here would journal an mtime
      // change that the next rename then waits to drain.
      if let parent = answer.destinationParent {
        state.view.noteRemote(destinationParent, parent)
      } else if destinationParent != sourceParent {
        state.view.touch(destinationParent, now: now)
      }
    }
    return answer
  }

  /// Applies everything journaled so far, then `operation` on the sandbox; the directories it
  /// touched are listed again where the view holds them.
  private func writeThrough<Result>(
    touching paths: [String], _ operation: @escaping @Sendable () async throws -> Result
  ) async throws -> Result {
    try await drain()
    let (linked, otherNames) = state.withLock { state in
      (
        Set(
          paths.compactMap { state.view.entry($0) }.filter { $0.type != .directory }
            .compactMap(\.inode)),
        paths.flatMap { state.links.otherNames(of: $0) }
      )
    }
    let result = try await operation()
    await refreshPinned(around: paths + otherNames, linkedTo: linked)
    return result
  }

  private func refreshPinned(around paths: [String], linkedTo inodes: Set<UInt64> = []) async {
    let directories = state.withLock { state -> [String] in
      var stale: [String] = []
      for (directory, listing) in state.view.pinned {
        // The directories that changed, and the ones listing them (their mtime and nlink).
        let touched = paths.contains { path in
          let parent = RemotePath.parent(of: path)
          return directory == parent || directory == RemotePath.parent(of: parent)
            || directory == path || directory.hasPrefix(path + "/")
        }
        // Other names of a hard-linked file: their nlink (and content) changed too.
        let linked =
          !inodes.isEmpty
          && listing.entries.contains { $0.attributes.inode.map(inodes.contains) ?? false }
        if touched || linked { stale.append(directory) }
      }
      return stale
    }
    for directory in directories {
      let listing = try? await inner.listDirectory(directory)
      state.withLock { state in state.view.rebase(directory, remote: listing) }
    }
  }

  // MARK: - Journal and view

  private func put(_ path: String, from localPath: String?, size: UInt64) async throws
    -> RemoteAttributes
  {
    try await pin(RemotePath.parent(of: path))
    var record = JournalRecord(.put, path)
    let modificationTime = localPath.flatMap(Self.modificationTime) ?? Self.now()
    record.modificationTime = JournalRecord.time(modificationTime)
    record.contentSize = size
    var content: [UInt8] = []
    if size <= Journal.inlineLimit {
      if let localPath { content = try Self.readWhole(localPath, size: Int(size)) }
      guard UInt64(content.count) == size else {
        throw LocalError(
          errno: EIO, "read", "the staged copy of \(path)", detail: "it changed while it was read")
      }
    } else if let localPath {
      let dataFile = journal.newDataFilePath()
      // A copy of up to `writeThroughSize` bytes: off the cooperative pool.
      try await Self.offPool { try Self.copyDurably(localPath, to: dataFile, size: size) }
      record.dataFile = dataFile
    }
    // Once committed (pending) or given up, the data file is the journal's to reset.
    defer { if let dataFile = record.dataFile { journal.releaseDataFile(dataFile) } }
    let (attributes, end, _) = try commitToJournal(record, content: content)
    try await journal.waitDurable(upTo: end)
    return attributes!
  }

  /// A create-like change, answered with the entry and (when the view knows it) its directory.
  private func commitEntry(_ record: JournalRecord) async throws -> RemoteEntryState {
    try await leased {
      try await pin(RemotePath.parent(of: record.path))
      try await settleOtherCaller(record.path)
      let committed = try commitToJournal(record, content: [])
      return RemoteEntryState(committed.attributes!, parent: committed.parent)
    }
  }

  /// A change by one caller to a name another caller's change to is still pending: that one
  /// reaches the sandbox first, so each is made as its own caller (a pending change is made
  /// as one caller, `PendingName.caller`).
  private func settleOtherCaller(_ path: String) async throws {
    guard let caller = CallerIdentity.current else { return }
    let other = state.withLock { state -> Bool in
      guard let pending = state.view.pendingName(path), pending.failure == nil else {
        return false
      }
      // A creation by someone else, or a removal of someone else's entry: the drain would put
      // ours in its place as the caller, over a file the caller may not write.
      if pending.change == .removed {
        return state.view.remoteEntry(path).map { $0.uid != caller.uid } ?? false
      }
      return pending.caller != nil && pending.caller != caller
    }
    if other { try await drain() }
  }

  /// A file with other hard links: a change to it must show under every name, which only the
  /// sandbox can do, so it goes there in order (write-through).
  private func hasOtherNames(_ path: String) -> Bool {
    if state.withLock({ $0.links.otherNames(of: path).count > 0 }) { return true }
    guard let attributes = knownAttributes(of: path) else { return false }
    return attributes.type != .directory && (attributes.linkCount ?? 1) > 1
  }

  private func knownAttributes(of path: String) -> RemoteAttributes? {
    guard case .local(let attributes) = state.withLock({ $0.view.resolve(path) }) else {
      return nil
    }
    return attributes
  }

  /// Pins what `record` touches, then commits it; the attributes of the entry and its
  /// directory afterwards.
  private func commit(_ record: JournalRecord, pinning directories: [String]) async throws
    -> (attributes: RemoteAttributes?, parent: RemoteAttributes?)
  {
    try await leased {
      for directory in directories { try await pin(directory) }
      let committed = try commitToJournal(record, content: [])
      return (committed.attributes, committed.parent)
    }
  }

  /// Applies `record` to the view and appends it to the journal, as one step: on a journal
  /// that cannot be written the view is put back.
  private func commitToJournal(
    _ record: JournalRecord, content: [UInt8], requireResult: Bool = false
  )
    throws -> (attributes: RemoteAttributes?, end: UInt64, parent: RemoteAttributes?)
  {
    var record = record
    record.madeAt = JournalRecord.time(Self.now())
    record.caller = CallerIdentity.current
    if !content.isEmpty { record.inlineSize = UInt64(content.count) }
    let framed = try JournalFraming.encode(record, content: content)
    let result = try state.withLock { state -> (RemoteAttributes?, UInt64, RemoteAttributes?) in
      let contentOffset = journal.end + UInt64(framed.count - content.count)
      let stored = storedContent(of: record, inlineAt: contentOffset)
      let saved = state.view.save([record.path] + (record.destination.map { [$0] } ?? []))
      let attributes = try Self.change(for: record, content: stored)(&state.view)
      if requireResult && attributes == nil { return (nil, 0, nil) }
      do {
        let end = try journal.append(framed: framed)
        state.journaled += 1
        return (attributes, end, state.view.entry(RemotePath.parent(of: record.path)))
      } catch {
        state.view.restore(saved)
        throw error
      }
    }
    logger.trace(
      "journaled \(record.operation.rawValue) \(record.path)\(record.destination.map { " -> " + $0 } ?? "")"
    )
    if result.0 != nil || !requireResult { scheduleDrain() }
    return result
  }

  func storedContent(of record: JournalRecord, inlineAt offset: UInt64) -> StagedContent? {
    guard record.operation == .put else { return nil }
    if let dataFile = record.dataFile {
      return StagedContent(location: .dataFile(dataFile), size: record.contentSize ?? 0)
    }
    return StagedContent(location: .journal(offset: offset), size: record.inlineSize ?? 0)
  }

  /// What `record` does to the view: shared by live changes and replay.
  static func change(for record: JournalRecord, content: StagedContent?)
    -> (inout LocalView) throws -> RemoteAttributes?
  {
    let madeAt = JournalRecord.time(record.madeAt) ?? now()
    let path = record.path
    return { view in
      view.caller = record.caller
      defer { view.caller = nil }
      switch record.operation {
      case .create:
        let attributes = RemoteAttributes(
          type: .regular, size: 0, permissions: record.mode ?? 0o644, modificationTime: madeAt,
          accessTime: madeAt, changeTime: madeAt, linkCount: 1, blocks: 0)
        return try view.createFile(
          path, attributes: attributes, exclusive: record.exclusive ?? true)
      case .put:
        return try view.putContent(
          path, content ?? .empty,
          modificationTime: JournalRecord.time(record.modificationTime) ?? madeAt)
      case .mkdir:
        let attributes = RemoteAttributes(
          type: .directory, size: 4096, permissions: record.mode ?? 0o755,
          modificationTime: madeAt, accessTime: madeAt, changeTime: madeAt, linkCount: 2)
        return try view.makeDirectory(path, attributes: attributes)
      case .symlink:
        let target = record.target ?? ""
        let attributes = RemoteAttributes(
          type: .symlink, size: UInt64(target.utf8.count), permissions: 0o777,
          modificationTime: madeAt, accessTime: madeAt, changeTime: madeAt, symlinkTarget: target,
          linkCount: 1)
        return try view.makeSymlink(path, target: target, attributes: attributes)
      case .unlink:
        try view.removeFile(path, now: madeAt)
        return nil
      case .rmdir:
        try view.removeDirectory(path, now: madeAt)
        return nil
      case .setattr:
        return try view.setAttributes(path, record.attributeChanges, now: madeAt)
      case .rename:
        return try view.renameLocally(
          from: path, to: record.destination ?? path, noReplace: record.noReplace ?? false,
          now: madeAt)
      }
    }
  }

  /// Runs a change with the view's pins held: the drain does not unpin while it runs.
  private func leased<T>(_ body: () async throws -> T) async throws -> T {
    state.withLock { $0.leases += 1 }
    defer { state.withLock { $0.leases -= 1 } }
    return try await body()
  }

  /// Makes `directory`'s listing the view's to answer (one listing, the first time), and its
  /// parent's, so the directory's own attributes (mtime, nlink) change with its entries here.
  func pin(_ directory: String) async throws {
    // Every change asks: a pinned folder whose own entry is held too (its parent pinned, for
    // its mtime, nlink and setgid) answers at once, without a walk up to the root.
    let held = state.withLock { state in
      state.view.isPinned(directory)
        && (directory == "/" || state.view.isPinned(RemotePath.parent(of: directory)))
    }
    if held { return }
    if directory != "/" { try await pin(RemotePath.parent(of: directory)) }
    let known = state.withLock { state -> Bool in
      if state.view.isPinned(directory) { return true }
      if case .local(let entry) = state.view.resolve(directory) {
        guard let entry else { return true }  // missing: the change itself says ENOENT
        return entry.type != .directory
      }
      return false
    }
    if known { return }
    let listing = try await inner.listDirectory(directory)
    state.withLock { $0.view.pin(directory, remote: listing) }
  }

  private func pinParents(of record: JournalRecord) async throws {
    try await pin(RemotePath.parent(of: record.path))
    if record.operation == .rmdir { try await pin(record.path) }
    if let destination = record.destination { try await pin(RemotePath.parent(of: destination)) }
  }

  // MARK: - Helpers

  /// Runs blocking file work on a thread of its own, not the cooperative pool.
  static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
  }

  static func now() -> RemoteTime {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return RemoteTime(seconds: Int64(time.tv_sec), nanoseconds: Int32(time.tv_nsec))
  }

  static func resolve(_ change: RemoteTimeChange, now: RemoteTime) -> RemoteTime {
    switch change {
    case .now: now
    case .set(let time): time
    }
  }

  static func fileSize(_ path: String) -> UInt64 {
    var status = stat()
    return stat(path, &status) == 0 ? UInt64(status.st_size) : 0
  }

  static func modificationTime(_ path: String) -> RemoteTime? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return RemoteTime(
      seconds: Int64(status.st_mtim.tv_sec), nanoseconds: Int32(status.st_mtim.tv_nsec))
  }

  /// A small staged file whole, in one read (Foundation's `Data(contentsOf:)` stats and copies
  /// again: 4% of the daemon's time in an rsync of small files). A byte past `size` is read too,
  /// so a file that grew shows in the count.
  static func readWhole(_ path: String, size: Int) throws -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw LocalError(errno: errno, "open", path) }
    defer { close(descriptor) }
    var failure: Int32 = 0
    let limit = size + 1
    let bytes = [UInt8](unsafeUninitializedCapacity: limit) { buffer, count in
      count = 0
      while count < limit {
        let got = pread(descriptor, buffer.baseAddress! + count, limit - count, off_t(count))
        if got < 0 && errno == EINTR { continue }
        guard got > 0 else {
          if got < 0 { failure = errno }
          return
        }
        count += got
      }
    }
    if failure != 0 { throw LocalError(errno: failure, "read", path) }
    return bytes
  }

  /// Copies a large staged file into the state folder and syncs it.
  static func copyDurably(_ source: String, to destination: String, size: UInt64) throws {
    let input = open(source, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw LocalError(errno: errno, "open", source) }
    defer { close(input) }
    let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard output >= 0 else { throw LocalError(errno: errno, "create", destination) }
    defer { close(output) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var copied: UInt64 = 0
    while copied < size {
      let count = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
      let written =
        count > 0 ? buffer.withUnsafeBytes { write(output, $0.baseAddress, count) } : -1
      guard count > 0, written == count else {
        let failure = errno
        unlink(destination)
        throw LocalError(
          errno: failure == ENOSPC ? ENOSPC : EIO, "copy into the state folder", source,
          detail: String(cString: strerror(failure)))
      }
      copied += UInt64(count)
    }
    guard fdatasync(output) == 0 else {
      unlink(destination)
      throw LocalError(errno: EIO, "fdatasync", destination)
    }
  }
}
