import Backend
import Glibc
import Synchronization

/// A local file holding the content of one remote file while it is open for writing.
///
/// Writes and reads go to the local file at disk speed; `upload` streams the whole file to the
/// remote when it is dirty. A generation counter tells whether writes raced an upload, so a write
/// that lands during an upload keeps the file dirty for the next one.
public final class StagingFile: Sendable {
  /// A path to the file, handed to the backend to download into and upload from. The file has no
  /// name (unlinked at birth, so a crash leaves nothing behind); `/proc/self/fd/N` reopens it.
  public let localPath: String
  private let descriptor: Int32
  private let state = Mutex(State())

  private struct State {
    var writeGeneration: UInt64 = 0
    var uploadedGeneration: UInt64 = 0
    var uploadInFlight: Task<Void, any Error>?
  }

  /// Creates an empty, unnamed file in `directory`.
  init(directory: String) throws {
    var template = Array((directory + "/sandbox-mount-staging.XXXXXX").utf8CString)
    let descriptor = mkstemp(&template)
    guard descriptor >= 0 else {
      throw RemoteError(
        errno: errno,
        "cannot create a staging file in \(directory): \(String(cString: strerror(errno)))")
    }
    unlink(template)
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    self.descriptor = descriptor
    self.localPath = "/proc/self/fd/\(descriptor)"
  }

  deinit {
    close(descriptor)
  }

  /// Whether the file has writes the remote has not acknowledged.
  public var isDirty: Bool {
    state.withLock { $0.writeGeneration != $0.uploadedGeneration }
  }

  /// Marks the content as changed, e.g. after an `O_TRUNC` open that must empty the remote file.
  public func markDirty() {
    state.withLock { $0.writeGeneration &+= 1 }
  }

  /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
  public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let total = try bytes.withUnsafeMutableBytes { buffer -> Int in
      var done = 0
      while done < count {
        let got = pread(
          descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
        if got < 0 {
          if errno == EINTR { continue }
          throw RemoteError(errno: errno, "staging read failed")
        }
        if got == 0 { break }
        done += got
      }
      return done
    }
    bytes.removeLast(count - total)
    return bytes
  }

  /// Writes all of `bytes` at `offset`.
  public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
    var done = 0
    while done < bytes.count {
      let put = pwrite(
        descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
      if put < 0 {
        if errno == EINTR { continue }
        throw RemoteError(errno: errno, "staging write failed")
      }
      done += put
    }
    markDirty()
  }

  public func truncate(to size: UInt64) throws {
    guard ftruncate(descriptor, off_t(size)) == 0 else {
      throw RemoteError(errno: errno, "staging truncate failed")
    }
    markDirty()
  }

  /// Size and modification time of the local content.
  public func status() throws -> (size: UInt64, modificationTime: RemoteTime) {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else {
      throw RemoteError(errno: errno, "staging stat failed")
    }
    return (
      UInt64(info.st_size),
      RemoteTime(seconds: Int64(info.st_mtim.tv_sec), nanoseconds: Int32(info.st_mtim.tv_nsec))
    )
  }

  /// Runs `upload` if the file is dirty, one upload at a time. A caller that finds an upload in
  /// flight waits for it, then uploads again if writes came in meanwhile (or that upload failed),
  /// so every caller's writes are covered by an upload whose result it sees.
  func uploadIfDirty(_ upload: @escaping @Sendable () async throws -> Void) async throws {
    while true {
      let step = state.withLock { state -> (task: Task<Void, any Error>, started: Bool)? in
        if let running = state.uploadInFlight { return (running, false) }
        guard state.writeGeneration != state.uploadedGeneration else { return nil }
        let generation = state.writeGeneration
        // The task settles the state itself before its result is visible, so a waiter never
        // finds a finished upload still marked in flight (it would spin on it).
        let task = Task {
          do {
            try await upload()
            self.state.withLock {
              $0.uploadInFlight = nil
              $0.uploadedGeneration = max($0.uploadedGeneration, generation)
            }
          } catch {
            self.state.withLock { $0.uploadInFlight = nil }
            throw error
          }
        }
        state.uploadInFlight = task
        return (task, true)
      }
      guard let step else { return }
      if step.started {
        try await step.task.value
        return
      }
      // Someone else's upload: whatever its result, check again (and upload ourselves if our
      // writes are not covered), so our caller sees the result of an upload of its writes.
      _ = try? await step.task.value
    }
  }
}
