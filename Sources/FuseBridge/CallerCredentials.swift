import Backend
import CFuse
import Glibc
import Synchronization

/// The credentials of the process behind a FUSE request: the kernel's uid, gid and pid
/// (`fuse_req_ctx`), and the supplementary groups from `/proc/PID/status`.
final class CallerCredentials: Sendable {
  private struct Key: Hashable {
    var pid: pid_t
    var uid: uid_t
    var gid: gid_t
  }

  private struct Remembered {
    var groups: [UInt32]
    var readAt: ContinuousClock.Instant
  }

  /// Groups read in the last moment, per thread and ids: a burst of requests from one process
  /// (an `rm -r`, a compile) reads its status once. A process that changes its groups and keeps
  /// its uid and gid may be answered with the old ones for this long.
  private let remembered = Mutex<[Key: Remembered]>([:])
  private static let lifetime: Duration = .milliseconds(100)

  func identity(of request: fuse_req_t) -> CallerIdentity? {
    guard let context = fuse_req_ctx(request)?.pointee else { return nil }
    let key = Key(pid: context.pid, uid: context.uid, gid: context.gid)
    guard key.pid > 0 else { return CallerIdentity(uid: key.uid, gid: key.gid) }
    let now = ContinuousClock.now
    if let known = remembered.withLock({ $0[key] }), now - known.readAt < Self.lifetime {
      return CallerIdentity(uid: key.uid, gid: key.gid, groups: known.groups)
    }
    let groups = Self.supplementaryGroups(of: key.pid) ?? []
    remembered.withLock { table in
      if table.count > 256 { table = table.filter { now - $0.value.readAt < Self.lifetime } }
      table[key] = Remembered(groups: groups, readAt: now)
    }
    return CallerIdentity(uid: key.uid, gid: key.gid, groups: groups)
  }

  /// The "Groups:" line of `/proc/PID/status`; nil when it cannot be read (the process is gone).
  static func supplementaryGroups(of pid: pid_t) -> [UInt32]? {
    let descriptor = open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes = [UInt8](repeating: 0, count: 4096)
    var count = 0
    while count < bytes.count {
      let got = bytes.withUnsafeMutableBytes {
        read(descriptor, $0.baseAddress! + count, $0.count - count)
      }
      if got <= 0 { break }
      count += got
    }
    return parseGroups(bytes[..<count])
  }

  static func parseGroups(_ status: ArraySlice<UInt8>) -> [UInt32]? {
    let text = String(decoding: status, as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix("Groups:") {
      return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
        .compactMap { UInt32($0) }
    }
    return nil
  }
}
