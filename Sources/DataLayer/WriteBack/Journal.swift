import Backend
import Foundation
import Synchronization

/// The write-back journal: an append-only file of changes in the order they were made, with
/// small files' bytes inline, in a state folder that outlives the daemon.
///
/// Invariants:
/// - A change is in the journal (written to the kernel, so it survives `kill -9`) before the
///   caller is answered; `waitDurable` adds fdatasync for close and fsync, in group commits:
///   one fdatasync covers every append before it, so a burst of closes costs one.
/// - The journal is emptied only when the view has nothing pending, so replay after a crash
///   rebuilds every change not yet applied (and harmlessly re-applies some that were).
final class Journal: Sendable {
  let directory: String
  let path: String
  private let descriptor: Int32
  private let state: Mutex<State>
  private let commitSignal = DispatchSemaphore(value: 0)
  /// Content up to this size goes inline; larger files get a data file.
  static let inlineLimit: UInt64 = 1 << 20

  private struct State {
    var end: UInt64
    var durable: UInt64
    var waiters: [(offset: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    var failure: Int32?
  }

  /// Opens (or makes) the journal in `directory`; records after a cut end are dropped.
  init(directory: String) throws {
    self.directory = directory
    self.path = directory + "/journal"
    try FileManager.default.createDirectory(
      atPath: directory + "/data", withIntermediateDirectories: true)
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw RemoteError(
        errno: errno, "cannot open the journal \(path): \(String(cString: strerror(errno)))")
    }
    self.descriptor = descriptor
    let end = UInt64(lseek(descriptor, 0, SEEK_END))
    state = Mutex(State(end: end, durable: end))
    let thread = Thread { [self] in commitLoop() }
    thread.name = "sandbox-mount journal"
    thread.start()
  }

  /// The records kept, with where each one's inline bytes start. A cut tail is cut off, so new
  /// records follow the last whole one.
  func replay() throws -> [(record: JournalRecord, contentOffset: UInt64)] {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    var records: [(JournalRecord, UInt64)] = []
    var offset = 0
    while let (record, next) = JournalFraming.decode(bytes, at: offset) {
      let bodyEnd = next - Int(record.inlineSize ?? 0)
      records.append((record, UInt64(bodyEnd)))
      offset = next
    }
    if offset < bytes.count {
      _ = ftruncate(descriptor, off_t(offset))
    }
    state.withLock {
      $0.end = UInt64(offset)
      $0.durable = UInt64(offset)
    }
    return records
  }

  /// Appends a framed record (and its inline content); returns the journal's new end.
  /// Blocking (one write to the page cache): callers hold the view's lock so that journal
  /// order is view order.
  func append(framed: [UInt8]) throws -> UInt64 {
    try state.withLock { state in
      if let failure = state.failure {
        throw RemoteError(errno: failure, "the journal cannot be written")
      }
      var written = 0
      while written < framed.count {
        let count = framed[written...].withUnsafeBytes {
          pwrite(descriptor, $0.baseAddress, $0.count, off_t(state.end) + off_t(written))
        }
        guard count > 0 else {
          let failure = errno
          // A record cut short is dropped by the next replay; the journal stays as it was.
          _ = ftruncate(descriptor, off_t(state.end))
          throw RemoteError(
            errno: failure == ENOSPC ? ENOSPC : EIO,
            "cannot write the journal: \(String(cString: strerror(failure)))")
        }
        written += count
      }
      state.end += UInt64(framed.count)
      return state.end
    }
  }

  var end: UInt64 { state.withLock { $0.end } }

  /// Returns once everything up to `offset` is on disk (fdatasync), batched with others.
  func waitDurable(upTo offset: UInt64) async throws {
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

  /// Reads `count` bytes of inline content at `offset`.
  func read(at offset: UInt64, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let got = bytes[done...].withUnsafeMutableBytes {
        pread(descriptor, $0.baseAddress, $0.count, off_t(offset) + off_t(done))
      }
      guard got > 0 else { throw RemoteError(errno: EIO, "the journal is shorter than expected") }
      done += got
    }
    return bytes
  }

  /// Empties the journal and its data files: call only when nothing is pending.
  func reset() {
    // Whoever still waits for durability waits for changes the sandbox has applied.
    let waiters = state.withLock { state in
      _ = ftruncate(descriptor, 0)
      state.end = 0
      state.durable = 0
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.continuation.resume() }
    let data = directory + "/data"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: data)) ?? [] {
      unlink(data + "/" + name)
    }
  }

  /// A new data file's path for content too big to go inline.
  func newDataFilePath() -> String {
    directory + "/data/" + UUID().uuidString
  }

  private func commitLoop() {
    while true {
      commitSignal.wait()
      let target = state.withLock { $0.end }
      let synced = fdatasync(descriptor) == 0
      let failure = errno
      let ready = state.withLock { state in
        if synced {
          state.durable = max(state.durable, target)
        } else {
          state.failure = failure
        }
        let done = state.waiters.filter { !synced || $0.offset <= state.durable }
        state.waiters.removeAll { !synced || $0.offset <= state.durable }
        return done
      }
      for waiter in ready {
        if synced {
          waiter.continuation.resume()
        } else {
          waiter.continuation.resume(
            throwing: RemoteError(errno: EIO, "fdatasync of the journal failed"))
        }
      }
    }
  }
}
