import Backend
import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization

/// Where a `WholeFileReader` keeps its copies, and how many bytes of them.
public struct WholeFileConfiguration: Sendable, Equatable {
  /// The copies go to a folder of their own made in here (`--cache-dir`, else `$TMPDIR`).
  public var parentDirectory: String
  /// Bytes of copies kept; the least recently read go first. One file larger than this is
  /// still downloaded, and kept until the next download.
  public var budget: UInt64
  /// A file at most this big is downloaded ahead when the next file of a directory being read
  /// in order is opened (`prefetchStart`); larger ones wait for their first read.
  public var prefetchLimit: UInt64

  public init(parentDirectory: String, budget: UInt64 = 4 << 30, prefetchLimit: UInt64 = 4 << 20) {
    self.parentDirectory = parentDirectory
    self.budget = budget
    self.prefetchLimit = prefetchLimit
  }
}

/// Reads for a backend without ranged reads (rclone's cache-mode "full"): the first read of a
/// file version downloads the whole file once into a local file, and every read after is served
/// from it.
///
/// Concurrent first reads share one download. A download is checked against the size taken
/// before the read: a short one is EIO, its partial file is deleted and nothing of it is
/// served; the next read downloads again. Copies are keyed by path and version, so a changed
/// file downloads again. A size-0 version (empty, or a pseudo-file whose size is unknown) is
/// not checked and its copy belongs to the handle that read it: each open sees a fresh snapshot.
///
/// A copy's file is unlinked as soon as it is open, so a crash leaves nothing behind, and an
/// evicted copy's space comes back when the last read still using it ends. File IO runs on a
/// dispatch queue, never on Swift's cooperative pool.
///
/// Invariant: `State.storedBytes` is the sum of the sizes of the `.ready` copies, each of which
/// is in `recency`; a key is `.downloading` exactly while its download task runs.
public final class WholeFileReader: FileReader {
  public let configuration: WholeFileConfiguration
  /// The folder the downloads go to, made at init and removed at shutdown.
  public let directory: String
  private let backend: any RemoteFilesystem
  private let state = Mutex(State())
  private let logger: Logger
  private let fileQueue = DispatchQueue(label: "whole-file-reader", attributes: .concurrent)

  private struct Key: Hashable, CustomStringConvertible {
    var path: String
    var version: RemoteFileVersion
    /// Set for size-0 versions only.
    var handle: UInt64?

    var description: String { "\(path)@\(version.size)" + (handle.map { "#\($0)" } ?? "") }
  }

  private enum Slot {
    case downloading(Task<LocalCopy, any Error>)
    case ready(LocalCopy)
  }

  private struct State {
    var slots: [Key: Slot] = [:]
    var recency = RecencyList<Key>()
    var storedBytes: UInt64 = 0
    var keysByHandle: [UInt64: Set<Key>] = [:]
    var nextFileNumber: UInt64 = 0
    var shutDown = false
    var statistics = Statistics()
  }

  /// Counters for logs and tests.
  public struct Statistics: Sendable, Equatable, CustomStringConvertible {
    public var downloads = 0
    public var failedDownloads = 0
    /// Reads that waited for a download another read started.
    public var sharedDownloads = 0
    public var hits = 0
    public var evictions = 0

    public var description: String {
      "\(downloads) downloads, \(failedDownloads) failed, \(sharedDownloads) shared, \(hits) hits, \(evictions) evicted"
    }
  }

  public init(
    backend: any RemoteFilesystem, configuration: WholeFileConfiguration, logger: Logger
  ) throws {
    self.backend = backend
    self.configuration = configuration
    self.logger = logger
    // --cache-dir may not exist yet, as the block cache also makes it.
    try? FileManager.default.createDirectory(
      atPath: configuration.parentDirectory, withIntermediateDirectories: true)
    var template = Array(
      (configuration.parentDirectory + "/sandbox-mount-files.XXXXXX").utf8CString)
    guard mkdtemp(&template) != nil else {
      throw LocalError(
        errno: errno, "making a folder for whole-file copies", configuration.parentDirectory
      )
    }
    directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  deinit {
    try? FileManager.default.removeItem(atPath: directory)
  }

  public var statistics: Statistics { state.withLock { $0.statistics } }

  /// Bytes of copies held, and how many.
  public var stored: (bytes: UInt64, files: Int) {
    state.withLock { ($0.storedBytes, $0.recency.count) }
  }

  public func read(
    _ path: String, version: RemoteFileVersion, offset: UInt64, length: Int, handle: UInt64
  ) async throws -> ArraySlice<UInt8> {
    guard length > 0 else { return [] }
    let key = Key(path: path, version: version, handle: version.size == 0 ? handle : nil)
    let copy = try await localCopy(key)
    return try await onFileQueue { try copy.read(at: offset, count: length) }
  }

  /// A small file about to be opened: its download starts now.
  public func prefetchStart(of path: String, version: RemoteFileVersion) {
    guard version.size > 0, version.size <= configuration.prefetchLimit else { return }
    _ = lookUpOrStart(Key(path: path, version: version))
  }

  /// Drops the snapshots of size-0 files this handle read; one still downloading is not kept.
  public func release(handle: UInt64) {
    let dropped = state.withLock { state -> [LocalCopy] in
      guard let keys = state.keysByHandle.removeValue(forKey: handle) else { return [] }
      return keys.compactMap { key in
        if case .downloading = state.slots[key] { state.slots[key] = nil }
        return remove(key, in: &state)
      }
    }
    closeLater(dropped)
  }

  /// Drops every copy and removes the folder; downloads still running fail.
  public func shutdown() {
    let dropped = state.withLock { state -> [LocalCopy] in
      state.shutDown = true
      let copies = state.slots.values.compactMap { slot -> LocalCopy? in
        if case .ready(let copy) = slot { return copy }
        return nil
      }
      state.slots.removeAll()
      state.recency.removeAll()
      state.keysByHandle.removeAll()
      state.storedBytes = 0
      return copies
    }
    closeLater(dropped)
    try? FileManager.default.removeItem(atPath: directory)
  }

  // MARK: - Copies

  private enum Lookup {
    case ready(LocalCopy)
    case downloading(Task<LocalCopy, any Error>)
  }

  private func localCopy(_ key: Key) async throws -> LocalCopy {
    switch lookUpOrStart(key) {
    case .ready(let copy): return copy
    case .downloading(let task): return try await task.value
    }
  }

  /// The copy, the download in flight, or a new download. An unstructured task: one reader
  /// giving up must not cancel the download others wait for.
  private func lookUpOrStart(_ key: Key) -> Lookup {
    state.withLock { state in
      switch state.slots[key] {
      case .ready(let copy):
        state.recency.touch(key)
        state.statistics.hits += 1
        return .ready(copy)
      case .downloading(let task):
        state.statistics.sharedDownloads += 1
        return .downloading(task)
      case nil:
        let localPath = directory + "/\(state.nextFileNumber)"
        state.nextFileNumber += 1
        state.statistics.downloads += 1
        let task = Task { try await self.download(key, to: localPath) }
        state.slots[key] = .downloading(task)
        if let handle = key.handle { state.keysByHandle[handle, default: []].insert(key) }
        return .downloading(task)
      }
    }
  }

  private func download(_ key: Key, to localPath: String) async throws -> LocalCopy {
    let copy: LocalCopy
    do {
      _ = try await backend.download(key.path, expectedSize: key.version.size, to: localPath)
      copy = try await onFileQueue { try LocalCopy(opening: localPath) }
      // The backend checks truncation already; this makes "never serve a short copy" hold here.
      guard copy.size >= key.version.size else {
        throw RemoteError(
          errno: EIO,
          "download of \(key.path): expected \(key.version.size) bytes, got \(copy.size)")
      }
    } catch {
      _ = try? await onFileQueue { unlink(localPath) }
      state.withLock { state in
        if case .downloading = state.slots[key] { state.slots[key] = nil }
        if let handle = key.handle { state.keysByHandle[handle]?.remove(key) }
        state.statistics.failedDownloads += 1
      }
      logger.debug("whole-file download of \(key) failed: \(error)")
      throw error
    }
    logger.debug("downloaded \(key) whole: \(copy.size) bytes")
    let evicted = state.withLock { state -> [LocalCopy]? in
      // Released (a size-0 snapshot) or shut down while downloading: serve this read only.
      guard !state.shutDown, case .downloading = state.slots[key] else { return nil }
      state.slots[key] = .ready(copy)
      state.recency.touch(key)
      state.storedBytes += copy.size
      var evicted: [LocalCopy] = []
      while state.storedBytes > configuration.budget, let oldest = state.recency.oldest,
        oldest != key, let removed = remove(oldest, in: &state)
      {
        evicted.append(removed)
        state.statistics.evictions += 1
      }
      return evicted
    }
    closeLater(evicted ?? [])
    return copy
  }

  /// Takes a ready copy out of the state (with the lock held); its file closes when the last
  /// read using it is done.
  private func remove(_ key: Key, in state: inout State) -> LocalCopy? {
    guard case .ready(let copy) = state.slots[key] else { return nil }
    state.slots[key] = nil
    state.recency.remove(key)
    state.storedBytes -= copy.size
    if let handle = key.handle { state.keysByHandle[handle]?.remove(key) }
    return copy
  }

  /// Lets go of copies off the pool: the last reference closes an unlinked file, and freeing a
  /// large file's blocks is disk work.
  private func closeLater(_ copies: [LocalCopy]) {
    guard !copies.isEmpty else { return }
    fileQueue.async { withExtendedLifetime(copies) {} }
  }

  private func onFileQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws
    -> T
  {
    try await withCheckedThrowingContinuation { continuation in
      fileQueue.async { continuation.resume(with: Result { try body() }) }
    }
  }
}

/// A downloaded file, open and already unlinked: it exists while a reference does.
private final class LocalCopy: Sendable {
  let descriptor: Int32
  let size: UInt64

  /// Opens the file at `path` and unlinks it.
  init(opening path: String) throws {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw RemoteError(errno: EIO, "cannot open \(path): \(String(cString: strerror(errno)))")
    }
    var info = stat()
    guard fstat(descriptor, &info) == 0 else {
      let failure = errno
      close(descriptor)
      throw RemoteError(errno: EIO, "cannot stat \(path): \(String(cString: strerror(failure)))")
    }
    unlink(path)
    self.descriptor = descriptor
    self.size = UInt64(info.st_size)
  }

  deinit {
    close(descriptor)
  }

  /// Up to `count` bytes at `offset`; fewer only at the end of the copy.
  func read(at offset: UInt64, count: Int) throws -> ArraySlice<UInt8> {
    guard offset < size else { return [] }
    let wanted = Int(min(UInt64(count), size - offset))
    var bytes = [UInt8](repeating: 0, count: wanted)
    var done = 0
    while done < wanted {
      let got = bytes.withUnsafeMutableBytes { buffer in
        pread(descriptor, buffer.baseAddress! + done, wanted - done, off_t(offset) + off_t(done))
      }
      if got < 0 && errno == EINTR { continue }
      guard got > 0 else {
        throw RemoteError(
          errno: EIO,
          "reading a whole-file copy: \(got < 0 ? String(cString: strerror(errno)) : "short")")
      }
      done += got
    }
    return bytes[...]
  }
}
