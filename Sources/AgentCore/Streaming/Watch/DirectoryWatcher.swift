import Dispatch
import Foundation
import Glibc

/// inotify on a directory inside the root, optionally on its whole tree, turned into envd's
/// `FilesystemEvent`s. Directories are opened through the jail and watched via `/proc/self/fd/N`,
/// so a watch never lands outside the root. The descriptor is read by a `DispatchSource` on a
/// private queue, never on Swift's cooperative pool.
///
/// Events go out in batches: the first event after a quiet spell opens a `batchWindow`, and
/// what arrived by its end is read and sent at once. A burst of changes (a `mv` per file, an
/// rm -rf) then costs the agent and each client one wakeup per window, not one per event.
final class DirectoryWatcher: @unchecked Sendable {
  /// Batches of events, in order; the stream ends on `stop()` or on a watcher failure (then
  /// see `failure`).
  let events: AsyncStream<[FilesystemEvent]>

  private let continuation: AsyncStream<[FilesystemEvent]>.Continuation
  private let jail: RootJail
  private let root: ProtocolPath
  private let recursive: Bool
  private let inotify: Int32
  private let queue = DispatchQueue(label: "sandbox-agent.watch")
  private let lock = NSLock()
  private var terminalError: ConnectError?
  // Touched only on `queue` once started (and before that, only by `init`).
  private var watches: [Int32: [String]] = [:]
  private var source: (any DispatchSourceRead)?
  private var sourceSuspended = false
  private var started = false
  /// Events read in the current window, not yet sent.
  private var batch: [FilesystemEvent] = []

  /// Batches buffered for a slow client before the watch fails as fsnotify's overflow does.
  static let bufferLimit = 65536
  /// How long the first event of a burst waits for the rest: far below any attribute timeout,
  /// and an inotify queue (16,384 events) does not fill in it.
  static let batchWindow = DispatchTimeInterval.milliseconds(5)

  /// Arms the watches (a blocking tree walk when recursive: call it off the cooperative pool).
  init(jail: RootJail, root: ProtocolPath, recursive: Bool) throws(ConnectError) {
    self.jail = jail
    self.root = root
    self.recursive = recursive
    (events, continuation) = AsyncStream.makeStream(
      of: [FilesystemEvent].self, bufferingPolicy: .bufferingOldest(Self.bufferLimit))
    inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
    guard inotify >= 0 else {
      // EMFILE: the user's inotify instances (host-wide) or the agent's descriptors ran out.
      let code: ConnectCode = errno == EMFILE || errno == ENFILE ? .resourceExhausted : .internal
      throw ConnectError(code, "error creating watcher: \(SystemError.reason(errno))")
    }
    do {
      let fd = try jail.open(root, flags: LinuxFlags.openPath | O_DIRECTORY, operation: "stat")
      try addWatch(fd, relative: [])
      if recursive { _ = addSubtrees(of: [], reportCreates: false) }
    } catch {
      close(inotify)
      throw ConnectError(.internal, "error adding path \(root.requested) to watcher: \(error)")
    }
  }

  /// Starts delivering events.
  func start() {
    let source = DispatchSource.makeReadSource(fileDescriptor: inotify, queue: queue)
    let fd = inotify
    source.setEventHandler { [weak self] in self?.openBatchWindow() }
    source.setCancelHandler { close(fd) }
    queue.sync {
      self.source = source
      self.started = true
    }
    source.resume()
  }

  /// Stops watching and closes the descriptor.
  func stop() {
    queue.async {
      if self.source != nil {
        self.cancelSource()
      } else if !self.started {
        close(self.inotify)
        self.started = true
      }
      self.continuation.finish()
    }
  }

  /// Why the stream ended, if it was not `stop()`.
  var failure: ConnectError? { lock.withLock { terminalError } }

  // MARK: On `queue`

  /// The descriptor is readable: stop listening for the window, then read all of it at once.
  private func openBatchWindow() {
    guard let source, !sourceSuspended else { return }
    source.suspend()
    sourceSuspended = true
    queue.asyncAfter(deadline: .now() + Self.batchWindow) { [weak self] in
      guard let self, let source = self.source else { return }
      self.readEvents()
      self.sendBatch()
      guard self.source != nil else { return }
      self.sourceSuspended = false
      source.resume()
    }
  }

  private func sendBatch() {
    guard !batch.isEmpty else { return }
    let events = batch
    batch = []
    if case .dropped = continuation.yield(events) {
      fail(ConnectError(.internal, "watcher error: fsnotify: queue or buffer overflow"))
    }
  }

  /// A suspended source runs its cancel handler (which closes the descriptor) only once resumed.
  private func cancelSource() {
    guard let source else { return }
    if sourceSuspended {
      sourceSuspended = false
      source.resume()
    }
    source.cancel()
    self.source = nil
  }

  private func readEvents() {
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while source != nil {
      let count = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        if errno != EAGAIN {
          fail(ConnectError(.internal, "watcher error: \(SystemError.reason(errno))"))
        }
        return
      }
      if count == 0 { return }
      let parsed = buffer.withUnsafeBytes {
        InotifyEvent.parse(UnsafeRawBufferPointer(rebasing: $0[0..<count]))
      }
      for event in parsed { handle(event) }
    }
  }

  private func handle(_ event: InotifyEvent) {
    if event.has(IN_Q_OVERFLOW) {
      return fail(ConnectError(.internal, "watcher error: fsnotify: queue or buffer overflow"))
    }
    guard let base = watches[event.wd] else { return }
    if event.has(IN_IGNORED) {
      watches[event.wd] = nil
      return
    }
    let isSelf = event.name.isEmpty
    // A subdirectory's own delete/move is already reported by its parent's watch.
    if isSelf && !base.isEmpty { return }
    var relative = base
    if !isSelf {
      guard let name = String(validating: event.name, as: UTF8.self) else {
        // protojson cannot marshal it; envd's stream fails the same way.
        return fail(
          ConnectError(
            .unknown,
            "error sending filesystem event: internal: marshal message: string field contains invalid UTF-8"
          ))
      }
      relative.append(name)
      if Self.mayBeAnonymous(name) && !exists(relative) { return }
    }
    for type in event.eventTypes { emit(relative, type: type) }
    guard recursive, !isSelf, event.has(IN_ISDIR) else { return }
    if event.has(IN_MOVED_FROM) {
      // Its watches now carry stale names; a move within the tree re-adds them at MOVED_TO.
      removeWatches(under: relative)
    } else if event.has(IN_CREATE) || event.has(IN_MOVED_TO) {
      if let fd = try? jail.open(
        path(relative), flags: LinuxFlags.openPath | O_DIRECTORY | O_NOFOLLOW),
        (try? addWatch(fd, relative: relative)) != nil
      {
        // Entries made before the watch was armed would be missed otherwise.
        _ = addSubtrees(of: relative, reportCreates: true)
      }
    }
  }

  /// inotify reports writes to an `O_TMPFILE` file (the agent's replace until its rename, or
  /// any program's) under `#INODE`, a name the directory does not have: no change to report.
  private static func mayBeAnonymous(_ name: String) -> Bool {
    name.count > 1 && name.first == "#" && name.dropFirst().allSatisfy { ("0"..."9").contains($0) }
  }

  private func exists(_ relative: [String]) -> Bool {
    (try? jail.open(path(relative), flags: LinuxFlags.openPath | O_NOFOLLOW)) != nil
  }

  private func emit(_ relative: [String], type: String) {
    batch.append(
      FilesystemEvent(
        name: relative.isEmpty ? "." : relative.joined(separator: "/"), type: type,
        path: path(relative).requested))
  }

  private func fail(_ error: ConnectError) {
    lock.withLock { if terminalError == nil { terminalError = error } }
    cancelSource()
    batch = []
    continuation.finish()
  }

  private func removeWatches(under relative: [String]) {
    for (wd, components) in watches where components.starts(with: relative) {
      inotify_rm_watch(inotify, wd)
      watches[wd] = nil
    }
  }

  // MARK: Watches (from `init`, then on `queue`)

  private func path(_ relative: [String]) -> ProtocolPath {
    relative.reduce(root) { $0.appending($1) }
  }

  private func addWatch(_ directory: FileDescriptor, relative: [String]) throws(SystemError) {
    let wd = inotify_add_watch(inotify, "/proc/self/fd/\(directory.raw)", InotifyEvent.watchMask)
    guard wd >= 0 else { throw SystemError("inotify_add_watch", path(relative).requested) }
    watches[wd] = relative
  }

  /// Watches every directory below `relative` (symlinks are not followed); with `reportCreates`,
  /// also reports each entry found as created. Returns false if the walk was cut short.
  private func addSubtrees(of relative: [String], reportCreates: Bool) -> Bool {
    guard
      let directory = try? jail.open(
        path(relative), flags: O_RDONLY | O_DIRECTORY | (relative.isEmpty ? 0 : O_NOFOLLOW)),
      let stream = fdopendir(dup(directory.raw))
    else { return false }
    defer { closedir(stream) }
    var subdirectories: [String] = []
    while let entry = readdir(stream) {
      let name = withUnsafePointer(to: entry.pointee.d_name) {
        String(validatingCString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
      }
      // Names that are not UTF-8 cannot travel in the protocol; their subtrees stay unwatched.
      guard let name, name != ".", name != ".." else { continue }
      if reportCreates { emit(relative + [name], type: "EVENT_TYPE_CREATE") }
      var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
      if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
        var info = stat()
        isDirectory =
          fstatat(directory.raw, name, &info, AT_SYMLINK_NOFOLLOW) == 0
          && info.st_mode & S_IFMT == S_IFDIR
      }
      if isDirectory { subdirectories.append(name) }
    }
    for name in subdirectories {
      let child = relative + [name]
      guard
        let fd = try? jail.open(
          path(child), flags: LinuxFlags.openPath | O_DIRECTORY | O_NOFOLLOW),
        (try? addWatch(fd, relative: child)) != nil
      else { continue }
      _ = addSubtrees(of: child, reportCreates: reportCreates)
    }
    return true
  }
}
