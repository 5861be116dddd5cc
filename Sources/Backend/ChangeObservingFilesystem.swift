/// What a change did to its paths.
public enum RemoteChangeKind: Sendable {
  /// Bytes written into an existing file, in place: no directory entry changed.
  case content
  /// Entries made, removed, renamed or replaced, or attributes set.
  case entries
}

/// Told of every change a backend makes, while it is under way and once it ended (whether it
/// succeeded or not: a failed change may still have changed something).
public protocol RemoteChangeObserver: Sendable {
  func begin(_ paths: [String], _ kind: RemoteChangeKind)
  func end(_ paths: [String], _ kind: RemoteChangeKind)
}

/// The backend with every change it makes told to `observers` (wrap the innermost backend, so
/// a write-back journal's drain is seen when it reaches the sandbox, not when it is journaled).
public struct ChangeObservingFilesystem: RemoteFilesystem {
  let inner: any RemoteFilesystem
  let observers: [any RemoteChangeObserver]

  public init(inner: any RemoteFilesystem, observers: [any RemoteChangeObserver]) {
    self.inner = inner
    self.observers = observers
  }

  /// Runs `change` with `paths` told to the observers before and after.
  private func around<Value>(
    _ paths: [String], _ kind: RemoteChangeKind = .entries, _ change: () async throws -> Value
  ) async rethrows -> Value {
    for observer in observers { observer.begin(paths, kind) }
    defer { for observer in observers { observer.end(paths, kind) } }
    return try await change()
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
    try await around([path]) { try await inner.upload(path, from: localPath) }
  }

  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await around([path], .content) {
      try await inner.writeRanges(
        path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
    }
  }

  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    try await around([path]) { try await inner.makeDirectory(path, mode: mode) }
  }

  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    try await around([path]) { try await inner.removeFile(path) }
  }

  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    try await around([path]) { try await inner.removeDirectory(path) }
  }

  public func rename(from source: String, to destination: String) async throws {
    try await around([source, destination]) {
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
    try await around([path]) { try await inner.setAttributes(path, changes) }
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    try await around([path]) {
      try await inner.createFile(path, mode: mode, exclusive: exclusive)
    }
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    try await around([path]) { try await inner.createDirectory(path, mode: mode) }
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    try await around([path]) {
      try await inner.makeNode(path, mode: mode, device: device)
    }
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    try await around([path]) { try await inner.createSymlink(path, target: target) }
  }

  public func readLink(_ path: String) async throws -> String {
    try await inner.readLink(path)
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    // The source's link count changes too.
    try await around([source, destination]) {
      try await inner.link(from: source, to: destination)
    }
  }

  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    try await around([source, destination]) {
      try await inner.rename(from: source, to: destination, flags: flags)
    }
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    try await inner.synchronize(path, dataOnly: dataOnly)
  }

  public func synchronizeDirectory(_ path: String) async throws {
    try await inner.synchronizeDirectory(path)
  }

  public func applyBatch(_ batch: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await around(batch.map(\.path)) { try await inner.applyBatch(batch) }
  }

  public func applyBatch(_ batch: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await around(batch.map(\.path)) {
      try await inner.applyBatch(batch, callers: callers)
    }
  }
}
