import Backend
import Dispatch
import Glibc
import Synchronization

/// The local side of one remote file open for writing: a sparse local file that holds the bytes
/// written since the open, and whatever was fetched to complete it. Nothing is downloaded at open.
///
/// Invariants, kept under one lock:
/// - Bytes in `local` are valid in the local file. Bytes below `remoteLimit` that are not in
///   `local` are the remote file's (at `remoteVersion`); bytes at or past it (up to `size`) are
///   local, zeros where never written.
/// - `dirty` ⊆ `local`: bytes changed since the last upload. `truncatedTo`: the smallest size a
///   truncate set since then, which the remote must apply before the dirty bytes.
/// - An upload takes the changes it sends out of the state; a failed one puts them back, so a
///   retried close or fsync sends them again and nothing acknowledged is lost.
public final class StagingFile: Sendable {
  /// A path to the file, handed to the backend to upload from. The file has no name (unlinked
  /// at birth, so a crash leaves nothing behind); `/proc/self/fd/N` reopens it.
  public let localPath: String
  private let descriptor: Int32
  /// For messages: the folder it lives in, where a full or failing disk is to be looked for.
  private let directory: String
  private let spares: SpareStagingFiles?
  private let state: Mutex<State>

  struct State {
    var size: UInt64
    var remoteLimit: UInt64
    var remoteVersion: RemoteFileVersion?
    var local = ByteRanges()
    var dirty = ByteRanges()
    var truncatedTo: UInt64?
    /// The remote content is to be replaced as a whole, atomically (an `O_TRUNC` open of a
    /// file with content): a cut upload must leave the old content, not a prefix of the new.
    var replacesContent = false
    var uploadInFlight: UploadInFlight?
    var changeCount: UInt64 = 0
  }

  /// What one upload sends: taken out of the state when it starts.
  public struct Changes: Sendable {
    public var dirty: ByteRanges
    public var truncatedTo: UInt64?
    public var size: UInt64
    /// Below this, bytes not held locally are the remote's: a whole upload fetches them first.
    public var remoteLimit: UInt64
    public var remoteVersion: RemoteFileVersion?
    public var replacesContent: Bool
  }

  /// A file whose remote content is `remote` (nil: empty, e.g. just created or `O_TRUNC`),
  /// on a descriptor from `spares` when one is kept.
  init(directory: String, remote: RemoteFileVersion?, spares: SpareStagingFiles? = nil) throws {
    let descriptor: Int32
    if let spare = spares?.take() {
      descriptor = spare
      // Its times are from its last use; a file created now shows now.
      _ = futimens(descriptor, nil)
    } else {
      var template = Array((directory + "/sandbox-mount-staging.XXXXXX").utf8CString)
      descriptor = mkstemp(&template)
      guard descriptor >= 0 else {
        throw LocalError(errno: errno, "create", "a staging file in \(directory)")
      }
      unlink(template)
      _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    }
    let size = remote?.size ?? 0
    if size > 0, ftruncate(descriptor, off_t(size)) != 0 {
      let failure = errno
      close(descriptor)
      throw LocalError(errno: failure, "ftruncate", "a staging file in \(directory)")
    }
    self.descriptor = descriptor
    self.directory = directory
    self.spares = spares
    self.localPath = "/proc/self/fd/\(descriptor)"
    state = Mutex(State(size: size, remoteLimit: size, remoteVersion: remote))
  }

  deinit {
    let size = state.withLock { $0.size }
    if let spares, size <= SpareStagingFiles.largestKept, ftruncate(descriptor, 0) == 0 {
      Self.skipFlushOnClose(descriptor)
      if spares.keep(descriptor) { return }
    }
    guard size > SpareStagingFiles.largestKept else {
      close(descriptor)
      return
    }
    // The last close of a large unlinked file frees its blocks, waiting for any writeback of
    // them: on a thread of its own, not on a request's or the pool's.
    let descriptor = descriptor
    DispatchQueue.global(qos: .utility).async { close(descriptor) }
  }

  /// ext4 (`auto_da_alloc`) marks a file truncated to size 0, and at the next close of any
  /// open of it writes back all it holds by then: a guard for programs that rewrite a file in
  /// place. A staging file is no such file, and a spare reused for a 512 MiB `cp` then wrote
  /// it all to disk at the upload's close (120-210 ms in close, the disk busy after), right
  /// before it was deleted. A close while the file is empty clears the mark for nothing.
  static func skipFlushOnClose(_ descriptor: Int32) {
    let reopened = open("/proc/self/fd/\(descriptor)", O_RDONLY | O_CLOEXEC)
    if reopened >= 0 { close(reopened) }
  }

  /// Writes and truncates so far: equal counts mean no change in between.
  public var changeCount: UInt64 { state.withLock { $0.changeCount } }

  /// Whether the next upload sends at most `limit` bytes, as ranges written in place where
  /// the backend can: few changed bytes of a file the remote has, or a small file whole.
  public func nextUploadIsAtMost(_ limit: UInt64) -> Bool {
    state.withLock { state in
      state.dirty.byteCount <= limit
        && (state.size <= limit || (state.remoteLimit > 0 && !state.replacesContent))
    }
  }

  /// Whether the file has changes the remote has not acknowledged.
  public var isDirty: Bool {
    state.withLock { !$0.dirty.isEmpty || $0.truncatedTo != nil }
  }

  /// An `O_TRUNC` open: the remote content must become this file's even without writes, and
  /// atomically.
  public func markTruncated() {
    state.withLock {
      $0.truncatedTo = 0
      $0.replacesContent = true
    }
  }

  /// The remote version the bytes not held locally belong to; nil when everything is local.
  public var remoteVersion: RemoteFileVersion? {
    state.withLock { $0.remoteLimit > 0 ? $0.remoteVersion : nil }
  }

  /// `range` (clipped to the size) cut into pieces read locally or from the remote.
  public func plan(_ range: Range<UInt64>) -> [(range: Range<UInt64>, local: Bool)] {
    state.withLock { state in
      let end = min(range.upperBound, state.size)
      guard range.lowerBound < end else { return [] }
      let clipped = range.lowerBound..<end
      let remotePart = clipped.lowerBound..<max(clipped.lowerBound, min(end, state.remoteLimit))
      var pieces = state.local.pieces(of: remotePart).map { ($0.range, $0.inside) }
      if remotePart.upperBound < end { pieces.append((remotePart.upperBound..<end, true)) }
      return pieces.filter { !$0.0.isEmpty }
    }
  }

  /// Reads up to `count` local bytes at `offset`; fewer only at the end of the file. The caller
  /// checked with `plan` that they are local.
  public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let total = try bytes.withUnsafeMutableBytes { buffer -> Int in
      var done = 0
      while done < count {
        let got = pread(
          descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
        if got < 0 {
          if errno == EINTR { continue }
          throw LocalError(errno: errno, "read", name)
        }
        if got == 0 { break }
        done += got
      }
      return done
    }
    bytes.removeLast(count - total)
    return bytes
  }

  /// Writes all of `bytes` at `offset`: they are local and dirty from now on.
  public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
    try state.withLock { state in
      try writeAll(bytes, at: offset)
      let range = offset..<offset + UInt64(bytes.count)
      state.local.insert(range)
      state.dirty.insert(range)
      state.size = max(state.size, range.upperBound)
      state.changeCount += 1
    }
  }

  public func truncate(to size: UInt64) throws {
    try state.withLock { state in
      guard ftruncate(descriptor, off_t(size)) == 0 else {
        throw LocalError(errno: errno, "ftruncate", name)
      }
      if size == 0 { Self.skipFlushOnClose(descriptor) }
      state.local.removeAll(from: size)
      state.dirty.removeAll(from: size)
      // Emptying a file with content starts a whole rewrite (`dd`, `ftruncate` then write).
      if size == 0 && state.remoteLimit > 0 { state.replacesContent = true }
      state.remoteLimit = min(state.remoteLimit, size)
      state.truncatedTo = min(state.truncatedTo ?? size, size)
      state.size = size
      state.changeCount += 1
    }
  }

  /// Stores fetched remote bytes at `offset`, except where the file was written meanwhile.
  func fill(_ bytes: [UInt8], at offset: UInt64) throws {
    try state.withLock { state in
      let range = offset..<offset + UInt64(bytes.count)
      for piece in state.local.pieces(of: range) where !piece.inside {
        guard piece.range.upperBound <= state.remoteLimit else { continue }
        let start = Int(piece.range.lowerBound - offset)
        let count = Int(piece.range.upperBound - piece.range.lowerBound)
        try bytes.withUnsafeBytes { buffer in
          try writeAll(
            UnsafeRawBufferPointer(rebasing: buffer[start..<start + count]),
            at: piece.range.lowerBound)
        }
        state.local.insert(piece.range)
      }
    }
  }

  /// The ranges below the remote limit that are not held locally.
  func gaps() -> [Range<UInt64>] {
    state.withLock { state in
      state.local.pieces(of: 0..<state.remoteLimit).filter { !$0.inside }.map(\.range)
    }
  }

  /// Size and modification time of the local content.
  /// Size, mtime and ctime of the staged copy: a write or truncate moves both times here.
  public func status() throws -> (
    size: UInt64, modificationTime: RemoteTime, changeTime: RemoteTime
  ) {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else {
      throw LocalError(errno: errno, "fstat", name)
    }
    return (
      UInt64(info.st_size),
      RemoteTime(seconds: Int64(info.st_mtim.tv_sec), nanoseconds: Int32(info.st_mtim.tv_nsec)),
      RemoteTime(seconds: Int64(info.st_ctim.tv_sec), nanoseconds: Int32(info.st_ctim.tv_nsec))
    )
  }

  /// Runs `upload` with the changes not yet sent, one upload at a time. A caller that finds an
  /// upload in flight waits for it, then uploads again if writes came in meanwhile (or that
  /// upload failed), so every caller's writes are covered by an upload whose result it sees.
  /// `upload` returns the remote version after it, which later remote reads use. Afterwards
  /// the remote holds every byte the file had when the upload started, so later uploads send
  /// only what changes next.
  func uploadIfDirty(
    _ upload: @Sendable (Changes) async throws -> RemoteFileVersion?
  ) async throws {
    while true {
      let step = state.withLock { state -> (upload: UploadInFlight, changes: Changes?)? in
        if let running = state.uploadInFlight { return (running, nil) }
        guard !state.dirty.isEmpty || state.truncatedTo != nil else { return nil }
        let changes = Changes(
          dirty: state.dirty, truncatedTo: state.truncatedTo, size: state.size,
          remoteLimit: state.remoteLimit, remoteVersion: state.remoteVersion,
          replacesContent: state.replacesContent)
        state.dirty = ByteRanges()
        state.truncatedTo = nil
        state.replacesContent = false
        let running = UploadInFlight()
        state.uploadInFlight = running
        return (running, changes)
      }
      guard let step else { return }
      guard let changes = step.changes else {
        // Someone else's upload: whatever its result, check again (and upload ourselves if our
        // writes are not covered), so our caller sees the result of an upload of its writes.
        await step.upload.finished()
        continue
      }
      // Ours, run by this caller (no task of its own: a close answered on libfuse's thread
      // stays there). The state is settled before waiters wake, so none finds a finished
      // upload still marked in flight.
      do {
        let version = try await upload(changes)
        state.withLock { state in
          state.uploadInFlight = nil
          // Bytes past the old limit were local (written, or holes): the remote has them
          // now, at a version later reads can name.
          // An emptied file stays to be replaced whole: a shell's `>` flushes the empty file
          // before the command writes, and a cut upload must not leave a prefix then either.
          if changes.replacesContent && changes.size == 0 { state.replacesContent = true }
          if let version {
            state.remoteVersion = version
            state.remoteLimit = min(changes.size, state.size, state.truncatedTo ?? .max)
          }
        }
        step.upload.finish()
        return
      } catch {
        state.withLock { state in
          state.uploadInFlight = nil
          state.dirty.formUnion(changes.dirty)
          state.dirty.removeAll(from: state.size)
          if let truncated = changes.truncatedTo {
            state.truncatedTo = min(state.truncatedTo ?? truncated, truncated)
          }
          state.replacesContent = state.replacesContent || changes.replacesContent
        }
        step.upload.finish()
        throw error
      }
    }
  }

  private var name: String { "staging file (fd \(descriptor)) in \(directory)" }

  private func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
    var done = 0
    while done < bytes.count {
      let put = pwrite(
        descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
      if put < 0 {
        if errno == EINTR { continue }
        throw LocalError(errno: errno, "write", name)
      }
      done += put
    }
  }
}

/// An upload of a staging file in flight: other callers wait for its end, then look again.
final class UploadInFlight: Sendable {
  private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>(
    (false, []))

  func finished() async {
    await withCheckedContinuation { continuation in
      let done = state.withLock { state in
        if !state.done { state.waiters.append(continuation) }
        return state.done
      }
      if done { continuation.resume() }
    }
  }

  func finish() {
    let waiters = state.withLock { state in
      state.done = true
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }
}

/// Emptied staging files kept for the next open: rsync and tar make one per file, and making
/// and dropping an inode each time costs more than the write (ext4 without a journal scans
/// past recently freed inodes).
final class SpareStagingFiles: Sendable {
  private let descriptors = Mutex<[Int32]>([])
  static let limit = 32
  static let largestKept: UInt64 = 8 << 20

  func take() -> Int32? {
    descriptors.withLock { $0.popLast() }
  }

  /// False: enough are kept, close it.
  func keep(_ descriptor: Int32) -> Bool {
    descriptors.withLock { descriptors in
      guard descriptors.count < Self.limit else { return false }
      descriptors.append(descriptor)
      return true
    }
  }

  deinit {
    for descriptor in descriptors.withLock({ $0 }) { close(descriptor) }
  }
}
