import Backend
import Foundation
import Synchronization

/// Applying the journal to the sandbox: in passes, each over everything pending when it began.
///
/// A pass applies the view's pending changes, not the journal's records one by one, so what
/// cancels never travels (a file made and removed) and what merges travels once (rsync's
/// create, write, utimens, chmod and rename of a temp file become one put of the final name).
/// Order inside a pass: removals deepest first, then directories top down, then files,
/// symlinks and attribute changes in parallel, then directories' own attributes deepest first
/// (their times after their contents changed). Every step is idempotent, so a replay after a
/// crash may apply a change twice.
extension WriteBackBackend {
  /// Pending changes on the way to the sandbox, and those it refused.
  public struct Progress: Sendable {
    public var pendingChanges: Int
    public var pendingBytes: UInt64
    public var failures: [String]
    public var appliedChanges: Int
    public var appliedBytes: UInt64
    /// The last pass stopped at a transient error (the sandbox unreachable); it retries.
    public var retrying: Bool
    /// Files of ours kept next to a version changed in the sandbox meanwhile.
    public var conflicts: [String]
  }

  public var progress: Progress {
    state.withLock { state in
      var bytes: UInt64 = 0
      var failures: [String] = []
      for (path, pending) in state.view.snapshot() {
        if case .file(let content) = pending.change { bytes += content.size }
        if let failure = pending.failure { failures.append("\(path): \(failure)") }
      }
      return Progress(
        pendingChanges: state.view.pendingCount, pendingBytes: bytes, failures: failures.sorted(),
        appliedChanges: state.appliedChanges, appliedBytes: state.appliedBytes,
        retrying: state.retryDelay > .zero, conflicts: state.conflicts)
    }
  }

  /// Returns when everything journaled before the call reached the sandbox. With
  /// `reportingFailures`, changes the sandbox refused are an EIO (fsync, `sync`).
  public func drain(reportingFailures: Bool = false) async throws {
    if state.withLock({ $0.view.hasChangesToApply }) {
      try await withCheckedThrowingContinuation { continuation in
        state.withLock { state in
          state.idleWaiters.append(continuation)
          state.gatherPause?.cancel()
        }
        scheduleDrain()
      }
    }
    if reportingFailures {
      let failures = progress.failures
      if !failures.isEmpty {
        throw RemoteError(
          errno: EIO, "the sandbox refused \(failures.count) changes: \(failures.first!)")
      }
    }
  }

  /// Drains for at most `timeout`; returns how many changes are left.
  public func drain(timeout: Duration) async -> Int {
    scheduleDrain()
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
      let left = progress
      if left.pendingChanges == left.failures.count { break }
      try? await Task.sleep(for: .milliseconds(50))
    }
    return progress.pendingChanges
  }

  /// Gives every refused change another try (`sync --retry-failed`).
  public func retryFailed() {
    state.withLock { state in
      for (path, pending) in state.view.snapshot() where pending.failure != nil {
        state.view.clearFailure(path)
      }
    }
    scheduleDrain()
  }

  /// Drops every change the sandbox refused: the view shows the sandbox's entry again.
  public func discardFailed() {
    state.withLock { state in
      for (path, pending) in state.view.snapshot() where pending.failure != nil {
        logger.warning("discarding the refused change to \(path)")
        state.view.discard(path)
      }
    }
    scheduleDrain()
  }

  func scheduleDrain() {
    let start = state.withLock { state -> Bool in
      if state.drainScheduled { return false }
      state.drainScheduled = true
      return true
    }
    guard start else { return }
    // Not as the caller whose change scheduled it: each change is made as its own.
    Task { await CallerIdentity.$current.withValue(nil) { await drainLoop() } }
  }

  private func drainLoop() async {
    while true {
      await gather()
      let step = state.withLock {
        state -> ([(path: String, pending: PendingName)], [CheckedContinuation<Void, any Error>]) in
        let items = state.view.snapshot().filter { $0.pending.failure == nil }
        guard items.isEmpty else { return (items, []) }
        state.drainScheduled = false
        if state.view.pendingCount == 0 {
          // Everything reached the sandbox: the journal starts again empty.
          journal.reset()
        }
        if state.leases == 0 { state.view.unpinIdle(olderThan: configuration.pinLifetime) }
        defer { state.idleWaiters = [] }
        return ([], state.idleWaiters)
      }
      if step.0.isEmpty {
        for waiter in step.1 { waiter.resume() }
        return
      }
      if await applyPass(step.0) {
        let delay = state.withLock { state -> Duration in
          state.retryDelay = min(max(state.retryDelay * 2, .milliseconds(250)), .seconds(10))
          return state.retryDelay
        }
        logger.warning("the sandbox is unreachable; retrying its changes in \(delay)")
        try? await Task.sleep(for: delay)
      } else {
        state.withLock { $0.retryDelay = .zero }
      }
    }
  }

  /// Waits while changes keep arriving, unless someone waits for the drain (sync, fsync,
  /// unmount): fewer, fuller passes.
  private func gather() async {
    let deadline = ContinuousClock.now + configuration.longestGather
    var seen = state.withLock { $0.journaled }
    let firstSeen = seen
    while ContinuousClock.now < deadline {
      let pause = Task { [delay = configuration.gatherDelay] in
        _ = try? await Task.sleep(for: delay)
      }
      let waited = state.withLock { state in
        if state.idleWaiters.isEmpty { state.gatherPause = pause }
        return !state.idleWaiters.isEmpty
      }
      if waited {
        pause.cancel()
        return
      }
      await pause.value
      if state.withLock({ state in
        state.gatherPause = nil
        return !state.idleWaiters.isEmpty
      }) {
        return
      }
      let now = state.withLock { $0.journaled }
      if now == seen || now - firstSeen >= configuration.fullPass { return }
      seen = now
    }
  }

  /// One pass; true when it stopped at a transient error (the rest waits for a retry).
  private func applyPass(_ items: [(path: String, pending: PendingName)]) async -> Bool {
    let items = state.withLock { state in
      items.map { item -> (path: String, pending: PendingName) in
        (item.path, Self.ownedExplicitly(item.pending, in: state.view, at: item.path))
      }
    }
    func depth(_ path: String) -> Int {
      path.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "/") ? 1 : 0) }
    }
    let removals = items.filter { Self.removesFirst($0.pending) }
    let directories = items.filter { $0.pending.change == .directory }
    let contents = items.filter {
      switch $0.pending.change {
      case .file, .symlink: true
      case .attributes: $0.pending.attributes?.type != .directory
      default: false
      }
    }
    // Directories made here too: their exact mode again once their contents are in (mkdir
    // inherits setgid from the sandbox's parent as it is at that moment, not as it was here).
    let directoryAttributes = items.filter {
      $0.pending.attributes?.type == .directory
        && ($0.pending.change == .attributes || $0.pending.change == .directory)
    }
    for level in Self.levels(removals, by: depth).reversed() {
      if await apply(level, step: .remove) { return true }
    }
    for level in Self.levels(directories, by: depth) {
      if await apply(level, step: .makeDirectory) { return true }
    }
    if await apply(contents, step: .content) { return true }
    for level in Self.levels(directoryAttributes, by: depth).reversed() {
      if await apply(level, step: .directoryAttributes) { return true }
    }
    return false
  }

  enum Step { case remove, makeDirectory, content, directoryAttributes }

  private static func levels(
    _ items: [(path: String, pending: PendingName)], by depth: (String) -> Int
  ) -> [[(path: String, pending: PendingName)]] {
    Dictionary(grouping: items) { depth($0.path) }.sorted { $0.key < $1.key }.map(\.value)
  }

  /// A removal, or an entry of another type than the sandbox's, which goes first.
  private static func removesFirst(_ pending: PendingName) -> Bool {
    if pending.change == .removed { return true }
    guard let remoteType = pending.remoteType, let type = pending.attributes?.type else {
      return false
    }
    return (remoteType == .directory) != (type == .directory)
  }

  /// Applies `items`: in batches where the sandbox takes them, else one by one, with bounded
  /// parallelism; true at a transient error.
  private func apply(_ items: [(path: String, pending: PendingName)], step: Step) async -> Bool {
    guard !items.isEmpty else { return false }
    var batches: [[(path: String, pending: PendingName)]] = []
    var single: [(path: String, pending: PendingName)] = []
    if state.withLock({ $0.batches }) {
      var current: [(path: String, pending: PendingName)] = []
      var bytes: UInt64 = 0
      for item in items {
        guard let size = Self.batchSize(item.pending, step: step) else {
          single.append(item)
          continue
        }
        if !current.isEmpty
          && (current.count >= Self.batchChanges || bytes + size > Self.batchBytes)
        {
          batches.append(current)
          current = []
          bytes = 0
        }
        current.append(item)
        bytes += size
      }
      if !current.isEmpty { batches.append(current) }
    } else {
      single = items
    }
    enum Work {
      case batch([(path: String, pending: PendingName)])
      case one(String, PendingName)
    }
    let work = batches.map(Work.batch) + single.map { Work.one($0.path, $0.pending) }
    return await withTaskGroup(of: Bool.self) { group in
      var next = 0
      var transient = false
      func addNext() {
        let item = work[next]
        next += 1
        group.addTask {
          switch item {
          case .batch(let items): await self.applyBatch(items, step: step)
          case .one(let path, let pending): await self.applyOne(path, pending, step: step)
          }
        }
      }
      while next < min(work.count, configuration.parallelChanges) { addNext() }
      for await failedTransiently in group {
        if failedTransiently { transient = true }
        if !transient && next < work.count { addNext() }
      }
      return transient
    }
  }

  static let batchChanges = 512
  static let batchBytes: UInt64 = 4 << 20
  static let batchFileLimit: UInt64 = 1 << 20

  /// The content bytes `pending` adds to a batch; nil when it goes on its own.
  private static func batchSize(_ pending: PendingName, step: Step) -> UInt64? {
    switch (step, pending.change) {
    case (.remove, _), (.makeDirectory, _), (.directoryAttributes, _): return 0
    case (.content, .file(let content)):
      return content.size <= batchFileLimit ? content.size : nil
    case (.content, .attributes): return 0
    case (.content, .symlink): return pending.changes.isEmpty ? 0 : nil
    default: return nil
    }
  }

  /// One batch; what it cannot settle (a directory or symlink already there) goes one by one.
  private func applyBatch(_ items: [(path: String, pending: PendingName)], step: Step) async
    -> Bool
  {
    let changes: [RemoteBatchChange]
    do {
      changes = try items.map { try batchChange($0.path, $0.pending, step: step) }
    } catch {
      return await applyEach(items, step: step)
    }
    let results: [Result<RemoteAttributes?, RemoteError>]
    do {
      results = try await inner.applyBatch(
        changes, callers: items.map { Self.caller(of: $0.pending, step: step) })
    } catch let error as RemoteError where error.errno == EOPNOTSUPP {
      state.withLock { $0.batches = false }
      return await applyEach(items, step: step)
    } catch {
      let errno = (error as? RemoteError)?.errno ?? EIO
      if Self.transientErrors.contains(errno) {
        maybeApplied(items)
        return true
      }
      logger.warning(
        "a batch of \(items.count) changes failed (\(error)); applying them one by one")
      return await applyEach(items, step: step)
    }
    var retry: [(path: String, pending: PendingName)] = []
    for (index, ((path, pending), result)) in zip(items, results).enumerated() {
      switch result {
      case .success(let attributes):
        finish(path, pending, step: step, result: step == .remove ? nil : attributes)
      case .failure(let error) where step == .remove && error.errno == ENOENT:
        finish(path, pending, step: step, result: nil)
      case .failure(let error) where error.errno == EEXIST:
        retry.append((path, pending))
      case .failure(let error) where error.errno == ESTALE:
        if await keepBoth(path, pending, changes[index]) { return true }
      case .failure(let error):
        if Self.transientErrors.contains(error.errno) {
          maybeApplied([(path, pending)])
          return true
        }
        fail(path, pending, error)
      }
    }
    return await applyEach(retry, step: step)
  }

  /// Someone changed the file in the sandbox after this mount last saw it: ours goes next to
  /// it as `NAME.sandbox-mount-conflict-TIMESTAMP`, theirs stays. True at a transient error.
  private func keepBoth(_ path: String, _ pending: PendingName, _ change: RemoteBatchChange)
    async -> Bool
  {
    guard case .put(_, let content, let mode, let changes, _) = change else { return false }
    // The retry of a put the sandbox carried out but whose answer was lost (the connection
    // cut, the agent killed): the file is the version this put names, ours.
    if case .set(let time)? = changes.modificationTime,
      let current = try? await inner.attributes(of: path), current.type == .regular,
      current.size == UInt64(content.count), current.modificationTime == time
    {
      finish(path, pending, step: .content, result: current)
      return false
    }
    let stamp = Self.conflictStamp()
    let conflict = path + ".sandbox-mount-conflict-" + stamp
    do {
      let results = try await inner.applyBatch([
        .put(conflict, content: content, mode: mode, changes: changes)
      ])
      if case .failure(let error) = results.first { throw error }
      let current = try? await inner.attributes(of: path)
      let kept = try? results.first?.get()
      logger.warning(
        "\(path) changed in the sandbox after this mount last read it: kept theirs, ours is \(conflict)"
      )
      state.withLock { state in
        state.view.markApplied(path, revision: pending.revision, result: current)
        state.view.noteRemote(conflict, kept ?? nil)
        state.conflicts.append("\(path): ours kept as \(RemotePath.name(of: conflict))")
        state.appliedChanges += 1
      }
      return false
    } catch {
      return isTransient(error, parking: path, pending)
    }
  }

  private static func conflictStamp() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y%m%dT%H%M%SZ", &parts)
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  private func applyEach(_ items: [(path: String, pending: PendingName)], step: Step) async -> Bool
  {
    for (path, pending) in items where await applyOne(path, pending, step: step) {
      return true
    }
    return false
  }

  private func batchChange(_ path: String, _ pending: PendingName, step: Step) throws
    -> RemoteBatchChange
  {
    switch (step, pending.change) {
    case (.remove, _):
      return pending.remoteType == .directory ? .removeDirectory(path) : .removeFile(path)
    case (.makeDirectory, _):
      return .makeDirectory(path, mode: pending.attributes?.permissions ?? 0o755)
    case (.content, .file(let content)):
      let (bytes, known) = try state.withLock { state in
        (
          try read(content, at: 0, count: Int(content.size)),
          state.view.remoteEntry(path)
        )
      }
      // The version this mount last knew there: someone else's newer one is not overwritten.
      let expected = known.flatMap { $0.type == .regular ? $0.version : nil }
      return .put(
        path, content: bytes, mode: pending.attributes?.permissions ?? 0o644,
        changes: Self.contentChanges(pending), expected: expected)
    case (.content, .symlink(let target)):
      return .symlink(path, target: target)
    default:
      return .setAttributes(path, Self.directoryChanges(pending, step: step))
    }
  }

  /// The owner and times a file's content goes with: its mtime is the one this mount shows, so
  /// both sides name one version.
  private static func contentChanges(_ pending: PendingName) -> RemoteAttributeChanges {
    var changes = explicitChanges(pending)
    changes.mode = pending.attributes?.permissions
    if changes.modificationTime == nil, let time = pending.attributes?.modificationTime {
      changes.modificationTime = .set(time)
    }
    return changes
  }

  /// Marks `path` applied, unless `step` was only the first part of its change.
  private func finish(
    _ path: String, _ pending: PendingName, step: Step, result: RemoteAttributes?
  ) {
    let finished =
      switch step {
      case .remove: pending.change == .removed
      case .makeDirectory: false
      default: true
      }
    logger.debug(
      "applied \(step) of \(path)\(finished ? "" : " (more to come)") mtime \(String(describing: result?.modificationTime)) rev \(pending.revision) changes \(pending.changes)"
    )
    guard finished else { return }
    state.withLock { state in
      state.view.markApplied(path, revision: pending.revision, result: result)
      state.appliedChanges += 1
      if case .file(let content) = pending.change { state.appliedBytes += content.size }
    }
  }

  /// True for an error worth a retry later; any other parks the change as refused.
  private func isTransient(_ error: any Error, parking path: String, _ pending: PendingName)
    -> Bool
  {
    if let errno = (error as? RemoteError)?.errno, Self.transientErrors.contains(errno) {
      maybeApplied([(path, pending)])
      return true
    }
    fail(path, pending, error)
    return false
  }

  private func maybeApplied(_ items: [(path: String, pending: PendingName)]) {
    state.withLock { state in
      for item in items { state.view.markMaybeApplied(item.path, item.pending.change) }
    }
  }

  private func fail(_ path: String, _ pending: PendingName, _ error: any Error) {
    let reason = (error as? RemoteError)?.message ?? "\(error)"
    if error is LocalError {
      logger.error("a change to \(path) cannot be sent: \(reason)")
    } else {
      logger.error("the sandbox refused a change to \(path): \(reason)")
    }
    state.withLock { $0.view.markFailed(path, revision: pending.revision, reason: reason) }
  }

  /// An entry made by a caller inside a folder whose own change (made here, or its mode or
  /// owner changed) has not reached the sandbox yet: the sandbox's folder may not let the caller
  /// in until the pass's last step, so the sandbox's user makes the entry and gives it the
  /// owner the view shows (the kernel here checked the caller's right to make it).
  static func ownedExplicitly(_ pending: PendingName, in view: LocalView, at path: String)
    -> PendingName
  {
    guard pending.caller != nil, let attributes = pending.attributes,
      let folder = view.pendingName(RemotePath.parent(of: path)),
      folder.change == .directory || folder.changes.mode != nil || folder.changes.uid != nil
        || folder.changes.gid != nil
    else { return pending }
    var owned = pending
    owned.caller = nil
    owned.changes.uid = attributes.uid
    owned.changes.gid = attributes.gid
    return owned
  }

  /// Who a step of `pending` is made as: its creator makes it (and so owns it, with the group
  /// a setgid folder gives); removals and a folder's own attributes go as the sandbox's user,
  /// the kernel having checked them here: as the creator, a chmod keeping a setgid folder's
  /// setgid would lose it when the creator is not in the folder's group.
  static func caller(of pending: PendingName, step: Step) -> CallerIdentity? {
    switch step {
    case .makeDirectory, .content: pending.caller
    case .remove, .directoryAttributes: nil
    }
  }

  /// True at a transient error.
  private func applyOne(_ path: String, _ pending: PendingName, step: Step) async -> Bool {
    await CallerIdentity.$current.withValue(Self.caller(of: pending, step: step)) {
      await applyOneAsCaller(path, pending, step: step)
    }
  }

  private func applyOneAsCaller(_ path: String, _ pending: PendingName, step: Step) async -> Bool {
    do {
      let result: RemoteAttributes?
      switch step {
      case .remove:
        try await removeRemote(path, wasDirectory: pending.remoteType == .directory)
        result = nil
      case .makeDirectory:
        result = try await ensureDirectory(path, mode: pending.attributes?.permissions ?? 0o755)
      case .content:
        result = try await applyContent(path, pending)
      case .directoryAttributes:
        result = try await inner.setAttributes(path, Self.directoryChanges(pending, step: step))
      }
      finish(path, pending, step: step, result: result)
      return false
    } catch {
      return isTransient(error, parking: path, pending)
    }
  }

  private static let transientErrors: Set<Int32> = [
    EIO, ETIMEDOUT, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH, EAGAIN, ENOTCONN,
  ]

  private func removeRemote(_ path: String, wasDirectory: Bool) async throws {
    do {
      if wasDirectory {
        try await inner.removeDirectory(path)
      } else {
        try await inner.removeFile(path)
      }
    } catch let error as RemoteError where error.errno == ENOENT {
      // Already gone: a replay, or someone else removed it.
    }
  }

  private func ensureDirectory(_ path: String, mode: UInt32) async throws -> RemoteAttributes {
    do {
      return try await inner.createDirectory(path, mode: mode).attributes
    } catch let error as RemoteError where error.errno == EEXIST {
      return try await inner.setAttributes(path, RemoteAttributeChanges(mode: mode))
    }
  }

  private func applyContent(_ path: String, _ pending: PendingName) async throws
    -> RemoteAttributes?
  {
    switch pending.change {
    case .file(let content):
      let source: String
      var temporary: String?
      switch content.location {
      case .dataFile(let file):
        source = file
      case .journal:
        let bytes = try state.withLock { _ in try read(content, at: 0, count: Int(content.size)) }
        let file = journal.newDataFilePath()
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        source = file
        temporary = file
      }
      defer {
        if let temporary {
          unlink(temporary)
          journal.releaseDataFile(temporary)
        }
      }
      if pending.remoteType == .regular {
        try await inner.upload(path, from: source)
      } else {
        if pending.remoteType != nil { try await removeRemote(path, wasDirectory: false) }
        // A new name: the replace route wants a file to replace. Not a write in place: one
        // cut by a full disk would leave a prefix under the name (and fill the disk).
        _ = try await inner.createFile(path, mode: 0o600, exclusive: false)
        try await inner.upload(path, from: source)
      }
      return try await inner.setAttributes(path, Self.contentChanges(pending))
    case .symlink(let target):
      do {
        _ = try await inner.createSymlink(path, target: target)
      } catch let error as RemoteError where error.errno == EEXIST {
        try await inner.removeFile(path)
        _ = try await inner.createSymlink(path, target: target)
      }
      var changes = Self.explicitChanges(pending)
      changes.mode = nil
      if changes.isEmpty { return try await inner.attributes(of: path) }
      return try await inner.setAttributes(path, changes)
    case .attributes:
      return try await inner.setAttributes(path, Self.explicitChanges(pending))
    default:
      return nil
    }
  }

  /// A directory's last step: its explicit changes, and the mode of one made here.
  private static func directoryChanges(_ pending: PendingName, step: Step)
    -> RemoteAttributeChanges
  {
    var changes = explicitChanges(pending)
    if step == .directoryAttributes, pending.change == .directory {
      changes.mode = pending.attributes?.permissions
    }
    return changes
  }

  private static func explicitChanges(_ pending: PendingName) -> RemoteAttributeChanges {
    var changes = pending.changes
    changes.size = nil
    return changes
  }
}
