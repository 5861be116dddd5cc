import Backend
import Synchronization

/// Paths this mount is changing or just changed, so the sandbox's watch events about them are
/// recognised as our own echo and not turned into invalidations (our caches already hold what
/// the server answered). A path counts as ours while a change to it is in flight and for
/// `window` after it ended: a change made there by someone else within that window shows once
/// the attribute timeout passes, as without watches.
public final class OwnChanges: Sendable {
  private struct State {
    var inFlight: [String: Int] = [:]
    var ended: [String: ContinuousClock.Instant] = [:]
  }
  private let state = Mutex(State())
  let window: Duration

  /// The event of a change comes about one round trip after the change; a second is slack for
  /// a loaded sandbox.
  public static let defaultWindow = Duration.seconds(2)
  private static let pruneThreshold = 4096

  public init(window: Duration = OwnChanges.defaultWindow) {
    self.window = window
  }

  /// The paths and their directories: a change moves its directory's times (and the agent puts
  /// them back after a replace, another event).
  private static func affected(_ paths: [String]) -> [String] {
    paths + paths.map { RemotePath.parent(of: $0) }
  }

  func begin(_ paths: [String]) {
    state.withLock { state in
      for path in Self.affected(paths) { state.inFlight[path, default: 0] += 1 }
    }
  }

  func end(_ paths: [String]) {
    let now = ContinuousClock.now
    state.withLock { state in
      for path in Self.affected(paths) {
        if let count = state.inFlight[path], count > 1 {
          state.inFlight[path] = count - 1
        } else {
          state.inFlight[path] = nil
        }
        state.ended[path] = now
      }
      if state.ended.count > Self.pruneThreshold {
        state.ended = state.ended.filter { now - $0.value <= window }
      }
    }
  }

  /// Whether an event about `path` now is the echo of our own change.
  func isOwn(_ path: String) -> Bool {
    state.withLock { state in
      if state.inFlight[path] != nil { return true }
      guard let ended = state.ended[path] else { return false }
      return ContinuousClock.now - ended <= window
    }
  }

  /// Runs `change` with `paths` marked as ours.
  func around<Value>(_ paths: [String], _ change: () async throws -> Value) async rethrows -> Value
  {
    begin(paths)
    defer { end(paths) }
    return try await change()
  }
}

/// The backend with every change it makes noted in `changes` (wrap the innermost backend, so a
/// write-back journal's drain is noted when it reaches the sandbox, not when it is journaled).
public struct OwnChangeRecorder: RemoteFilesystem {
  let inner: any RemoteFilesystem
  public let changes: OwnChanges

  public init(inner: any RemoteFilesystem, changes: OwnChanges = OwnChanges()) {
    self.inner = inner
    self.changes = changes
  }

  public func attributes(of path: String) async throws -> RemoteAttributes {
    try await inner.attributes(of: path)
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    try await inner.listDirectory(path)
  }

  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64)
    async throws -> [UInt8]
  {
    try await inner.read(path, offset: offset, length: length, expectedSize: expectedSize)
  }

  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    try await inner.download(path, expectedSize: expectedSize, to: localPath)
  }

  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    try await changes.around([path]) { try await inner.upload(path, from: localPath) }
  }

  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await changes.around([path]) {
      try await inner.writeRanges(
        path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
  }

  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    try await changes.around([path]) { try await inner.makeDirectory(path, mode: mode) }
  }

  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    try await changes.around([path]) { try await inner.removeFile(path) }
  }

  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    try await changes.around([path]) { try await inner.removeDirectory(path) }
  }

  public func rename(from source: String, to destination: String) async throws {
    try await changes.around([source, destination]) {
      try await inner.rename(from: source, to: destination)
    }
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    try await inner.filesystemStatistics()
  }

  public func capabilities() async -> RemoteCapabilities { await inner.capabilities() }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    try await self.changes.around([path]) { try await inner.setAttributes(path, changes) }
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    try await changes.around([path]) {
      try await inner.createFile(path, mode: mode, exclusive: exclusive)
    }
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    try await changes.around([path]) { try await inner.createDirectory(path, mode: mode) }
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    try await changes.around([path]) {
      try await inner.makeNode(path, mode: mode, device: device)
    }
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    try await changes.around([path]) { try await inner.createSymlink(path, target: target) }
  }

  public func readLink(_ path: String) async throws -> String {
    try await inner.readLink(path)
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    // The source's link count changes too.
    try await changes.around([source, destination]) {
      try await inner.link(from: source, to: destination)
    }
  }

  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    try await changes.around([source, destination]) {
      try await inner.rename(from: source, to: destination, flags: flags)
    }
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    try await inner.synchronize(path, dataOnly: dataOnly)
  }

  public func applyBatch(_ batch: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await changes.around(batch.map(\.path)) { try await inner.applyBatch(batch) }
  }

  public func applyBatch(_ batch: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await changes.around(batch.map(\.path)) {
      try await inner.applyBatch(batch, callers: callers)
    }
  }
}
