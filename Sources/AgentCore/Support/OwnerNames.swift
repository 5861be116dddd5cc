import Glibc
import Synchronization

/// uid → user name and gid → group name, cached: ListDir asks for the same few ids many times.
/// Falls back to the numeric id as a string, as envd does.
public final class OwnerNames: Sendable {
  private let users = Mutex<[uid_t: String]>([:])
  private let groups = Mutex<[gid_t: String]>([:])

  public init() {}

  public func user(_ uid: uid_t) -> String {
    if let cached = users.withLock({ $0[uid] }) { return cached }
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 16 * 1024)
    var name = String(uid)
    if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let found = result?.pointee {
      name = String(cString: found.pw_name)
    }
    users.withLock { $0[uid] = name }
    return name
  }

  public func group(_ gid: gid_t) -> String {
    if let cached = groups.withLock({ $0[gid] }) { return cached }
    var entry = Glibc.group()
    var result: UnsafeMutablePointer<Glibc.group>?
    var buffer = [CChar](repeating: 0, count: 64 * 1024)
    var name = String(gid)
    if getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, let found = result?.pointee {
      name = String(cString: found.gr_name)
    }
    groups.withLock { $0[gid] = name }
    return name
  }
}
