import Glibc

/// A user of the machine the agent runs on, as `getpwnam` reports it.
/// Decides how `~` and relative paths resolve and who owns what the agent creates.
public struct AgentUser: Sendable, Equatable {
  public var name: String
  public var uid: uid_t
  public var gid: gid_t
  /// Home directory, read as a protocol path (inside the root).
  public var home: String

  public init(name: String, uid: uid_t, gid: gid_t, home: String) {
    self.name = name
    self.uid = uid
    self.gid = gid
    self.home = home
  }

  /// Looks `name` up in the system's user database; nil if it does not exist.
  public static func lookup(name: String) -> AgentUser? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 16 * 1024)
    let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
    guard status == 0, let found = result?.pointee else { return nil }
    return AgentUser(
      name: String(cString: found.pw_name), uid: found.pw_uid, gid: found.pw_gid,
      home: String(cString: found.pw_dir))
  }

  /// The user the agent itself runs as (root when run like envd).
  public static func current() -> AgentUser {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 16 * 1024)
    let uid = geteuid()
    if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let found = result?.pointee {
      return AgentUser(
        name: String(cString: found.pw_name), uid: found.pw_uid, gid: found.pw_gid,
        home: String(cString: found.pw_dir))
    }
    return AgentUser(name: String(uid), uid: uid, gid: getegid(), home: "/")
  }
}
