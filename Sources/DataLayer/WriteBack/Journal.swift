import Backend
import Foundation
import Synchronization

/// The write-back journal: a file of changes in the order they were made, with small files'
/// bytes inline, in a state folder that outlives the daemon.
///
/// Layout: a header (magic and generation), then framed records, then zeros. The tail is
/// written with zeros ahead of time, so the fdatasync of a close writes the record's blocks
/// only, not the file's size too (about a fifth of the cost on ext4).
///
/// Invariants:
/// - A change is in the journal (written to the kernel, so it survives `kill -9`) before the
///   caller is answered; `waitDurable` adds fdatasync for close and fsync, in group commits:
///   one fdatasync covers every append before it, so a burst of closes costs one.
/// - The journal is emptied only when the view has nothing pending, so replay after a crash
///   rebuilds every change not yet applied (and harmlessly re-applies some that were).
/// - Emptying starts a new generation instead of cutting the file: the records left behind
///   fail the new generation's checksum, so replay never applies them.
final class Journal: Sendable {
  let directory: String
  let path: String
  private let descriptor: Int32
  private let state: Mutex<State>
  /// Data files handed out but not yet in a committed record (a put copies its content before
  /// the record is written): a reset must not delete them.
  private let reservedDataFiles = Mutex<Set<String>>([])
  private let commitSignal = DispatchSemaphore(value: 0)
  /// Content up to this size goes inline; larger files get a data file.
  static let inlineLimit: UInt64 = 1 << 20
  static let magic = Array("SMJ2".utf8)
  static let fileHeaderSize: UInt64 = 16
  /// Zeros written ahead of the end at a time.
  static let preallocationStep: UInt64 = 4 << 20
  /// A journal this big is cut back when it empties.
  static let keptCapacity: UInt64 = 64 << 20

  private struct State {
    var generation: UInt64
    var end: UInt64
    /// Bytes of the file written (header, records, zeros): appends below it keep the size.
    var capacity: UInt64
    var durable: UInt64
    /// An fdatasync is running (on the commit thread or a request thread).
    var syncing = false
    var waiters: [(offset: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    var failure: Int32?
  }

  /// Opens (or makes) the journal in `directory`; `replay` reads what it holds.
  init(directory: String) throws {
    self.directory = directory
    self.path = directory + "/journal"
    do {
      try FileManager.default.createDirectory(
        atPath: directory + "/data", withIntermediateDirectories: true)
    } catch {
      throw LocalError(foundation: error, "mkdir", directory + "/data")
    }
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw LocalError(errno: errno, "open", "the journal \(path)")
    }
    self.descriptor = descriptor
    let size = UInt64(lseek(descriptor, 0, SEEK_END))
    var generation = Self.newGeneration()
    if size == 0 {
      try Self.writeHeader(descriptor, generation: generation, path: path)
    } else {
      var header = [UInt8](repeating: 0, count: Int(Self.fileHeaderSize))
      guard pread(descriptor, &header, header.count, 0) == header.count,
        Array(header[0..<4]) == Self.magic
      else {
        close(descriptor)
        throw LocalError(
          errno: EINVAL, "read", "the journal \(path)",
          detail:
            "not a journal this version reads; if it holds changes, sync them with the version that wrote it, else remove it"
        )
      }
      generation = header[8..<16].enumerated().reduce(0) {
        $0 | UInt64($1.element) << (8 * $1.offset)
      }
    }
    let end = Self.fileHeaderSize
    state = Mutex(State(generation: generation, end: end, capacity: max(size, end), durable: end))
    let thread = Thread { [self] in commitLoop() }
    thread.name = "sandbox-mount journal"
    thread.start()
  }

  /// The records kept, with where each one's inline bytes start. What follows the last whole
  /// record is cut off, so new records follow it and nothing stale can ever line up after them.
  func replay() throws -> [(record: JournalRecord, contentOffset: UInt64)] {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    let generation = state.withLock { $0.generation }
    var records: [(JournalRecord, UInt64)] = []
    var offset = Int(Self.fileHeaderSize)
    while let (record, next) = JournalFraming.decode(bytes, at: offset, generation: generation) {
      let bodyEnd = next - Int(record.inlineSize ?? 0)
      records.append((record, UInt64(bodyEnd)))
      offset = next
    }
    if offset < bytes.count {
      _ = ftruncate(descriptor, off_t(offset))
    }
    state.withLock {
      $0.end = UInt64(offset)
      $0.capacity = UInt64(offset)
      $0.durable = UInt64(offset)
    }
    return records
  }

  /// Appends a frame from `JournalFraming.encode`; returns the journal's new end.
  /// Blocking (one write to the page cache): callers hold the view's lock so that journal
  /// order is view order.
  func append(framed: [UInt8]) throws -> UInt64 {
    try state.withLock { state in
      if let failure = state.failure {
        throw LocalError(
          errno: failure, "append", "the journal \(path)",
          detail: "an earlier fdatasync failed: \(String(cString: strerror(failure)))")
      }
      var framed = framed
      JournalFraming.seal(&framed, generation: state.generation)
      try preallocate(&state, through: state.end + UInt64(framed.count))
      try writeFully(framed, at: state.end)
      state.end += UInt64(framed.count)
      return state.end
    }
  }

  /// Writes zeros past `capacity` so the file covers `offset`: appends below it then change
  /// no file size, and their fdatasync writes data blocks only.
  private func preallocate(_ state: inout State, through offset: UInt64) throws {
    guard offset > state.capacity else { return }
    let target = max(offset, state.capacity + Self.preallocationStep)
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    var position = state.capacity
    while position < target {
      let count = min(UInt64(zeros.count), target - position)
      try writeFully(Array(zeros[0..<Int(count)]), at: position)
      position += count
      state.capacity = position
    }
  }

  private func writeFully(_ bytes: [UInt8], at offset: UInt64) throws {
    var written = 0
    while written < bytes.count {
      let count = bytes[written...].withUnsafeBytes {
        pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset) + off_t(written))
      }
      guard count > 0 else {
        // Bytes past the end are never read back: the next append overwrites them.
        let failure = errno
        throw LocalError(
          errno: failure == ENOSPC ? ENOSPC : EIO, "write", "the journal \(path)",
          detail: String(cString: strerror(failure)))
      }
      written += count
    }
  }

  private static func writeHeader(_ descriptor: Int32, generation: UInt64, path: String) throws {
    var header = magic + [0, 0, 0, 0]
    for index in 0..<8 { header.append(UInt8(truncatingIfNeeded: generation >> (8 * index))) }
    guard pwrite(descriptor, header, header.count, 0) == header.count else {
      throw LocalError(errno: errno, "write", "the journal \(path)")
    }
  }

  private static func newGeneration() -> UInt64 {
    UInt64.random(in: 1...UInt64.max)
  }

  var end: UInt64 { state.withLock { $0.end } }

  /// Returns once everything up to `offset` is on disk (fdatasync), batched with others. On a
  /// thread that may block, the caller syncs itself unless a sync that covers it is running.
  func waitDurable(upTo offset: UInt64) async throws {
    if BlockingThreads.currentMayBlock, try syncInline(upTo: offset) { return }
    try await withCheckedThrowingContinuation { continuation in
      let ready = state.withLock { state -> Bool in
        if state.durable >= offset { return true }
        state.waiters.append((offset, continuation))
        return false
      }
      if ready {
        continuation.resume()
      } else {
        commitSignal.signal()
      }
    }
  }

  /// fdatasync on the calling thread; false: someone else's sync is running, wait for it.
  private func syncInline(upTo offset: UInt64) throws -> Bool {
    let target = state.withLock { state -> UInt64? in
      if state.durable >= offset { return 0 }
      if state.syncing { return nil }
      state.syncing = true
      return state.end
    }
    guard let target else { return false }
    if target == 0 { return true }
    sync(upTo: target)
    if let failure = state.withLock({ $0.failure }) {
      throw LocalError(
        errno: EIO, "fdatasync", "the journal \(path)",
        detail: String(cString: strerror(failure)))
    }
    return true
  }

  /// Reads `count` bytes of inline content at `offset`.
  func read(at offset: UInt64, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let got = bytes[done...].withUnsafeMutableBytes {
        pread(descriptor, $0.baseAddress, $0.count, off_t(offset) + off_t(done))
      }
      guard got > 0 else {
        throw LocalError(
          errno: EIO, "read", "the journal \(path)", detail: "shorter than expected")
      }
      done += got
    }
    return bytes
  }

  /// Empties the journal and its data files: call only when nothing is pending.
  func reset() {
    // Whoever still waits for durability waits for changes the sandbox has applied.
    let waiters = state.withLock { state in
      let generation = Self.newGeneration()
      if (try? Self.writeHeader(descriptor, generation: generation, path: path)) != nil {
        state.generation = generation
        if state.capacity > Self.keptCapacity {
          _ = ftruncate(descriptor, off_t(Self.fileHeaderSize))
          state.capacity = Self.fileHeaderSize
        }
        state.end = Self.fileHeaderSize
        state.durable = Self.fileHeaderSize
      }
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.continuation.resume() }
    // The new header to disk off the caller's thread, before a crash could replay the old.
    commitSignal.signal()
    let data = directory + "/data"
    // Under the lock: a name reserved meanwhile is either in the set or not yet on disk.
    reservedDataFiles.withLock { reserved in
      for name in (try? FileManager.default.contentsOfDirectory(atPath: data)) ?? []
      where !reserved.contains(data + "/" + name) {
        unlink(data + "/" + name)
      }
    }
  }

  /// A new data file's path for content too big to go inline, kept by resets until
  /// `releaseDataFile` (call it once the record naming it is committed, or given up).
  func newDataFilePath() -> String {
    let path = directory + "/data/" + UUID().uuidString
    reservedDataFiles.withLock { _ = $0.insert(path) }
    return path
  }

  func releaseDataFile(_ path: String) {
    reservedDataFiles.withLock { _ = $0.remove(path) }
  }

  private func commitLoop() {
    while true {
      commitSignal.wait()
      let target = state.withLock { state -> UInt64? in
        if state.syncing || (state.waiters.isEmpty && state.durable >= state.end) { return nil }
        state.syncing = true
        return state.end
      }
      // A sync on a request thread runs (it signals again for waiters it did not cover), or
      // there is nothing to sync.
      guard let target else { continue }
      sync(upTo: target)
    }
  }

  /// fdatasync, then wakes every waiter it covered; called with `syncing` set, which it clears.
  private func sync(upTo target: UInt64) {
    let synced = fdatasync(descriptor) == 0
    let failure = errno
    let (ready, more) = state.withLock { state in
      state.syncing = false
      if synced {
        state.durable = max(state.durable, target)
      } else {
        state.failure = failure
      }
      let done = state.waiters.filter { !synced || $0.offset <= state.durable }
      state.waiters.removeAll { !synced || $0.offset <= state.durable }
      return (done, !state.waiters.isEmpty)
    }
    for waiter in ready {
      if synced {
        waiter.continuation.resume()
      } else {
        waiter.continuation.resume(
          throwing: LocalError(errno: EIO, "fdatasync", "the journal \(path)"))
      }
    }
    if more { commitSignal.signal() }
  }
}
