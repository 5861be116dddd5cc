import CFuse
import FilesystemCore
import Foundation
import Logging

/// Sends the filesystem's invalidations to the kernel from a thread of its own: a notification
/// may wait in the kernel for a request of the same directory, which a libfuse thread would be
/// answering. Requests queue here, duplicates merged, so a burst of events on one file costs
/// one notification.
final class KernelNotifications: KernelNotifier, @unchecked Sendable {
  // @unchecked: `session` outlives the thread (`stop` waits for it before the session goes);
  // everything else is guarded by `condition`.
  private enum Item: Hashable {
    case inode(UInt64, content: Bool)
    case entry(parent: UInt64, name: String)
  }

  private let session: OpaquePointer
  private let condition = NSCondition()
  private var queue: [Item] = []
  private var queued: Set<Item> = []
  private var stopped = false
  private var sent = 0
  private let finished = DispatchSemaphore(value: 0)
  private let logger: Logger

  /// Beyond this many waiting, new ones are dropped: the kernel then keeps an entry until its
  /// timeout, as without watches.
  static let queueLimit = 65536

  init(session: OpaquePointer, logger: Logger) {
    self.session = session
    self.logger = logger
    let thread = Thread { [self] in run() }
    thread.name = "fuse-notify"
    thread.start()
  }

  func invalidateInode(_ inode: UInt64, content: Bool) {
    enqueue(.inode(inode, content: content))
  }

  func invalidateEntry(parent: UInt64, name: String) {
    enqueue(.entry(parent: parent, name: name))
  }

  /// Notifications sent so far.
  var count: Int { condition.withLock { sent } }

  /// Ends the thread; call before the session is destroyed. Waits up to 2 s.
  func stop() {
    condition.withLock {
      stopped = true
      condition.signal()
    }
    _ = finished.wait(timeout: .now() + 2)
  }

  private func enqueue(_ item: Item) {
    condition.withLock {
      guard !stopped, queue.count < Self.queueLimit, queued.insert(item).inserted else { return }
      // An inode whose pages go anyway needs no attribute-only notice.
      if case .inode(let inode, false) = item, queued.contains(.inode(inode, content: true)) {
        queued.remove(item)
        return
      }
      queue.append(item)
      condition.signal()
    }
  }

  private func run() {
    while true {
      let item: Item? = condition.withLock {
        while queue.isEmpty && !stopped { condition.wait() }
        guard !stopped else { return nil }
        let item = queue.removeFirst()
        queued.remove(item)
        sent += 1
        return item
      }
      guard let item else { break }
      send(item)
    }
    finished.signal()
  }

  private func send(_ item: Item) {
    let status: Int32
    switch item {
    case .inode(let inode, let content):
      // A negative offset drops the attributes only; 0, 0 the whole page cache too.
      status = fuse_lowlevel_notify_inval_inode(session, fuse_ino_t(inode), content ? 0 : -1, 0)
    case .entry(let parent, let name):
      status = name.withCString {
        fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), $0, name.utf8.count)
      }
    }
    logger.trace("kernel invalidation \(item): \(status)")
    // ENOENT: the kernel does not hold it; nothing to drop.
    if status != 0 && status != -ENOENT {
      logger.debug("kernel invalidation \(item) failed: \(String(cString: strerror(-status)))")
    }
  }
}
