import Backend
import Glibc
import Logging
import Synchronization

/// Drops what the kernel caches, from a thread that answers no FUSE request: the kernel may
/// wait for a request in the same directory to finish before it takes the notification.
public protocol KernelNotifier: Sendable {
  /// The inode's attributes, and with `content` its cached pages (and a directory's listing).
  func invalidateInode(_ inode: UInt64, content: Bool)
  /// The name → inode entry (or a negative one) in `parent`.
  func invalidateEntry(parent: UInt64, name: String)
}

/// How live invalidation behaves (`--watch`, `--watch-limit`).
public struct WatchConfiguration: Sendable {
  /// Directories watched at once; the least recently used one stops first.
  public var limit: Int
  /// Kernel timeouts for names and attributes inside a watched directory (the configured ones
  /// apply elsewhere): an event invalidates them, so they can be long.
  public var attributeTimeout: Double
  public var entryTimeout: Double
  /// Backoff before re-establishing a broken watch: doubles from `retryMinimum` to `retryMaximum`.
  public var retryMinimum: Duration = .milliseconds(100)
  public var retryMaximum: Duration = .seconds(5)
  /// New watches per second, after a burst of `limit`: a walk through more folders than are
  /// watched (rsync, tar, find) would otherwise start and stop a watch per folder it enters,
  /// and each costs a request and a stream. A folder denied one keeps the ordinary timeouts.
  public var startsPerSecond: Double = 10
  /// How long after the first use a watch starts: the requests of the call that used the
  /// folder go first (a cold 4 KiB pwrite took 7.0 ms beside two watch starts, 6.1 without).
  public var startDelay: Duration = .milliseconds(50)

  public init(limit: Int, attributeTimeout: Double, entryTimeout: Double) {
    self.limit = limit
    self.attributeTimeout = attributeTimeout
    self.entryTimeout = entryTimeout
  }
}

/// Watches the directories the kernel uses (bounded, least recently used first) and turns each
/// change made inside the sandbox into invalidations: the kernel's entry or inode, our
/// attribute and listing caches. Events of our own changes (`OwnChanges`) are skipped. A watch
/// that breaks is re-established with backoff; until then, and for a directory not watched,
/// the ordinary timeouts apply.
final class LiveInvalidation: Sendable {
  private struct Watch {
    var task: Task<Void, Never>?
    var lastUse: UInt64
    /// The watch is armed: names inside get the long kernel timeouts.
    var active = false
  }

  private struct State {
    var watches: [String: Watch] = [:]
    var clock: UInt64 = 0
    /// Watches that may start now (a token bucket of `limit`, refilled at `startsPerSecond`).
    var startBudget: Double
    var budgetCheckedAt = ContinuousClock.now
    var stopped = false
    var notifier: (any KernelNotifier)?
    var observers: [@Sendable (_ directory: String) -> Void] = []
    var invalidations = 0
    var ownEchoes = 0
    var reestablished = 0
  }

  let configuration: WatchConfiguration
  private let watcher: any RemoteWatching
  private let ownChanges: OwnChanges?
  private let inodes: InodeTable
  private let directories: DirectoryCache
  private let logger: Logger
  private let state: Mutex<State>

  init(
    configuration: WatchConfiguration, watcher: any RemoteWatching, ownChanges: OwnChanges?,
    inodes: InodeTable, directories: DirectoryCache, logger: Logger
  ) {
    self.configuration = configuration
    self.watcher = watcher
    self.ownChanges = ownChanges
    self.inodes = inodes
    self.directories = directories
    self.logger = logger
    self.state = Mutex(State(startBudget: Double(configuration.limit)))
  }

  func setNotifier(_ notifier: any KernelNotifier) {
    state.withLock { $0.notifier = notifier }
  }

  func addObserver(_ observer: @escaping @Sendable (_ directory: String) -> Void) {
    state.withLock { $0.observers.append(observer) }
  }

  /// The kernel uses `directory` (a lookup or a listing there): watch it, or mark it used.
  func use(_ directory: String) {
    var evicted: (String, Task<Void, Never>?)?
    state.withLock { state in
      state.clock += 1
      if state.watches[directory] != nil {
        state.watches[directory]!.lastUse = state.clock
        return
      }
      guard !state.stopped, configuration.limit > 0, Self.takeStart(&state, configuration)
      else { return }
      if state.watches.count >= configuration.limit,
        let oldest = state.watches.min(by: { $0.value.lastUse < $1.value.lastUse })
      {
        state.watches[oldest.key] = nil
        evicted = (oldest.key, oldest.value.task)
      }
      state.watches[directory] = Watch(task: nil, lastUse: state.clock)
      let task = Task { [self] in await run(directory) }
      state.watches[directory]!.task = task
    }
    if let (directory, task) = evicted {
      task?.cancel()
      // Names handed out with the long timeouts fall back to the ordinary ones.
      dropKernelState(of: directory)
    }
  }

  private static func takeStart(_ state: inout State, _ configuration: WatchConfiguration) -> Bool {
    let now = ContinuousClock.now
    let seconds = (now - state.budgetCheckedAt) / .seconds(1)
    state.budgetCheckedAt = now
    state.startBudget = min(
      Double(configuration.limit), state.startBudget + seconds * configuration.startsPerSecond)
    guard state.startBudget >= 1 else { return false }
    state.startBudget -= 1
    return true
  }

  /// Whether changes in `directory` are reported now.
  func isWatching(_ directory: String) -> Bool {
    state.withLock { $0.watches[directory]?.active == true }
  }

  func stop() {
    let tasks = state.withLock { state in
      state.stopped = true
      defer { state.watches = [:] }
      return state.watches.values.compactMap(\.task)
    }
    for task in tasks { task.cancel() }
  }

  /// Counters for `status` and tests.
  var counts: (watched: Int, active: Int, invalidations: Int, ownEchoes: Int, reestablished: Int) {
    state.withLock { state in
      (
        state.watches.count, state.watches.values.filter(\.active).count, state.invalidations,
        state.ownEchoes, state.reestablished
      )
    }
  }

  // MARK: One watch

  private func run(_ directory: String) async {
    var failures = 0
    var armedBefore = false
    try? await Task.sleep(for: configuration.startDelay)
    while !Task.isCancelled {
      do {
        for try await event in watcher.watchDirectory(directory) {
          switch event {
          case .started:
            failures = 0
            setActive(directory, true)
            if armedBefore {
              // Changes made while the watch was down were not reported.
              state.withLock { $0.reestablished += 1 }
              logger.info("watch of \(directory) re-established")
              dropCaches(of: directory)
            }
            armedBefore = true
          case .changed(let name, let change):
            apply(change, name: name, in: directory)
          }
        }
      } catch let error as RemoteError where error.errno == ENOENT || error.errno == ENOTDIR {
        logger.debug("watch of \(directory) ended: \(error.message)")
        forgetWatch(directory)
        return
      } catch {
        if !Task.isCancelled { logger.debug("watch of \(directory) broke: \(error)") }
      }
      let wasActive = setActive(directory, false)
      if Task.isCancelled { return }
      if wasActive { dropKernelState(of: directory) }
      failures += 1
      try? await Task.sleep(for: retryDelay(after: failures))
    }
  }

  private func retryDelay(after failures: Int) -> Duration {
    var delay = configuration.retryMinimum
    for _ in 1..<min(failures, 20) where delay < configuration.retryMaximum { delay *= 2 }
    delay = min(delay, configuration.retryMaximum)
    // Jitter, so watches broken together do not come back in one burst.
    return delay * Double.random(in: 0.5...1.0)
  }

  @discardableResult
  private func setActive(_ directory: String, _ active: Bool) -> Bool {
    state.withLock { state in
      let was = state.watches[directory]?.active ?? false
      state.watches[directory]?.active = active
      return was
    }
  }

  private func forgetWatch(_ directory: String) {
    let wasActive = state.withLock { state in
      state.watches.removeValue(forKey: directory)?.active ?? false
    }
    if wasActive { dropKernelState(of: directory) }
  }

  // MARK: Invalidation

  private func apply(_ change: RemoteChange, name: String, in directory: String) {
    let isSelf = name.isEmpty || name == "."
    let path = isSelf ? directory : RemotePath.join(directory, name)
    if let ownChanges, ownChanges.isOwn(path) || Self.isOurTemporaryName(name) {
      state.withLock { $0.ownEchoes += 1 }
      return
    }
    let (notifier, observers) = state.withLock { state in
      state.invalidations += 1
      return (state.notifier, state.observers)
    }
    for observer in observers { observer(isSelf ? RemotePath.parent(of: path) : directory) }
    logger.debug("watch: \(change) \(path)")
    inodes.invalidateAttributes(ofPath: path)
    if isSelf {
      notifier.map { notify($0, inodeOf: directory, content: false) }
      return
    }
    // A listing holds its entries' attributes too.
    directories.invalidate(directory)
    let inode = inodes.inode(ofPath: path)
    switch change {
    case .written:
      if let inode { notifier?.invalidateInode(inode, content: true) }
    case .attributesChanged:
      if let inode { notifier?.invalidateInode(inode, content: false) }
    case .created, .removed, .renamed:
      inodes.invalidateAttributes(ofPath: directory)
      if change != .created { directories.invalidateTree(path) }
      guard let notifier else { return }
      // The directory's cached listing and times, the name, and whatever now has it.
      notify(notifier, inodeOf: directory, content: true)
      // A folder that still exists keeps its name: dropping the entry of a process's working
      // folder breaks its getcwd (git gc failed so).
      let existingFolder =
        change == .created
        && inodes.heldChildren(of: directory).contains { $0.name == name && $0.isDirectory }
      if let parent = inodes.inode(ofPath: directory), !existingFolder {
        notifier.invalidateEntry(parent: parent, name: name)
      }
      if let inode { notifier.invalidateInode(inode, content: true) }
    }
  }

  private func notify(_ notifier: any KernelNotifier, inodeOf path: String, content: Bool) {
    if let inode = inodes.inode(ofPath: path) { notifier.invalidateInode(inode, content: content) }
  }

  /// Whether `name` is a temporary file our changes go through: the agent's replace
  /// (`.NAME.sandbox-agent-XXXX`), the exec layer's batches (`.NAME.sandbox-mount-batch`,
  /// `.sandbox-mount-batch-UUID.tgz`). Its events are the echo of a change of ours.
  static func isOurTemporaryName(_ name: String) -> Bool {
    name.hasPrefix(".")
      && (name.contains(".sandbox-agent-") || name.contains(".sandbox-mount-batch"))
  }

  /// Our caches of `directory` and the kernel's, after events may have been missed.
  private func dropCaches(of directory: String) {
    for observer in state.withLock({ $0.observers }) { observer(directory) }
    directories.invalidate(directory)
    inodes.invalidateAttributes(ofPath: directory)
    for child in inodes.heldChildren(of: directory) {
      inodes.invalidateAttributes(of: child.inode)
    }
    dropKernelState(of: directory)
  }

  /// The kernel's names and attributes in `directory`, which may carry the long timeouts.
  private func dropKernelState(of directory: String) {
    guard let notifier = state.withLock({ $0.notifier }),
      let parent = inodes.inode(ofPath: directory)
    else { return }
    notifier.invalidateInode(parent, content: true)
    for child in inodes.heldChildren(of: directory) {
      notifier.invalidateInode(child.inode, content: false)
      // Not a folder's name: it may be a process's working folder, whose getcwd would break
      // (git gc failed so when a watch was dropped). Its own watch covers its contents.
      if !child.isDirectory { notifier.invalidateEntry(parent: parent, name: child.name) }
    }
  }
}
