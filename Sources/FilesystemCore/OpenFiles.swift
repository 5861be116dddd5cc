import Backend
import DataLayer
import Synchronization

/// Open file handles, and per inode the one staging file its writers share.
///
/// All handles of an inode see the same staging file, so a write through one descriptor is
/// visible to a read through another. The staging file lives while any handle of the inode is
/// open; the last release drops it (after its upload).
final class OpenFiles: Sendable {
  struct Handle: Sendable {
    let inode: UInt64
    let writable: Bool
    /// Size and mtime when opened: what remote reads are checked against.
    let version: RemoteFileVersion
    /// The staging file's change count when a flush of this handle failed (close(2) got the
    /// error); nil when none did.
    var failedFlushAt: UInt64? = nil
  }

  private struct InodeState {
    var handles = 0
    var staging: StagingFile?
    var loading: Task<StagingFile, any Error>?
  }

  private struct State {
    var handles: [UInt64: Handle] = [:]
    var inodes: [UInt64: InodeState] = [:]
    var nextHandle: UInt64 = 1
  }

  private let state = Mutex(State())

  /// Counts a handle about to be opened on `inode`, so its staging file outlives a concurrent
  /// release of another handle. Undo with `endUse` if the open fails.
  func beginUse(of inode: UInt64) {
    state.withLock { $0.inodes[inode, default: InodeState()].handles += 1 }
  }

  /// Ends a use started with `beginUse`; returns the staging file if this was the last use, so
  /// the caller can drop it after any final upload.
  @discardableResult
  func endUse(of inode: UInt64) -> Bool {
    state.withLock { state in
      guard var files = state.inodes[inode] else { return true }
      files.handles -= 1
      if files.handles <= 0 {
        state.inodes[inode] = nil
        return true
      }
      state.inodes[inode] = files
      return false
    }
  }

  func register(_ handle: Handle) -> UInt64 {
    state.withLock { state in
      let number = state.nextHandle
      state.nextHandle += 1
      state.handles[number] = handle
      return number
    }
  }

  func handle(_ number: UInt64) -> Handle? {
    state.withLock { $0.handles[number] }
  }

  func removeHandle(_ number: UInt64) -> Handle? {
    state.withLock { $0.handles.removeValue(forKey: number) }
  }

  func noteFailedFlush(_ number: UInt64, at changeCount: UInt64) {
    state.withLock { $0.handles[number]?.failedFlushAt = changeCount }
  }

  /// Drops the staging file of `inode`, whose writer was just released, with its unsent
  /// changes; readers then read the remote's version. Not while another writer has it open or
  /// an open is under way (it may hold the staging file already): false then.
  func dropStaging(ofReleased inode: UInt64) -> Bool {
    state.withLock { state in
      guard var files = state.inodes[inode], files.staging != nil else { return false }
      let open = state.handles.values.filter { $0.inode == inode }
      // The released handle is no longer registered but still counts as a use.
      guard !open.contains(where: \.writable), files.handles == open.count + 1 else {
        return false
      }
      files.staging = nil
      state.inodes[inode] = files
      return true
    }
  }

  /// The staging file of `inode` if it has one (no waiting for one being loaded).
  func staging(of inode: UInt64) -> StagingFile? {
    state.withLock { $0.inodes[inode]?.staging }
  }

  /// The staging file of `inode`, made by `load` unless it exists or is being made; concurrent
  /// opens share one load. A failed load is not kept, so the next open tries again.
  func staging(
    of inode: UInt64, loadingWith load: @escaping @Sendable () async throws -> StagingFile
  ) async throws -> StagingFile {
    enum Step {
      case ready(StagingFile)
      case wait(Task<StagingFile, any Error>)
    }
    let step = state.withLock { state -> Step in
      var files = state.inodes[inode, default: InodeState()]
      if let staging = files.staging { return .ready(staging) }
      if let loading = files.loading { return .wait(loading) }
      let task = Task { try await load() }
      files.loading = task
      state.inodes[inode] = files
      return .wait(task)
    }
    switch step {
    case .ready(let staging):
      return staging
    case .wait(let task):
      do {
        let staging = try await task.value
        state.withLock { state in
          state.inodes[inode]?.staging = staging
          state.inodes[inode]?.loading = nil
        }
        return staging
      } catch {
        state.withLock { state in state.inodes[inode]?.loading = nil }
        throw error
      }
    }
  }

  /// The staging file of `inode`, made by `make` at once unless it exists; nil while another
  /// open is loading one (wait for that with `staging(of:loadingWith:)`). `make` runs outside
  /// the lock: a staging file that lost a race is dropped.
  func stagingWithoutWaiting(of inode: UInt64, make: () throws -> StagingFile) throws
    -> StagingFile?
  {
    enum Found {
      case staging(StagingFile)
      case loading
      case none
    }
    func find(_ state: State) -> Found {
      guard let files = state.inodes[inode] else { return .none }
      if let staging = files.staging { return .staging(staging) }
      return files.loading == nil ? .none : .loading
    }
    switch state.withLock({ find($0) }) {
    case .staging(let staging): return staging
    case .loading: return nil
    case .none: break
    }
    let made = try make()
    return state.withLock { state -> StagingFile? in
      switch find(state) {
      case .staging(let staging): return staging
      case .loading: return nil
      case .none:
        state.inodes[inode, default: InodeState()].staging = made
        return made
      }
    }
  }

  /// Open handles, for shutdown logs.
  var handleCount: Int { state.withLock { $0.handles.count } }
}
