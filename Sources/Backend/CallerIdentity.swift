/// Who made a request: the uid, gid and supplementary groups of the process behind a FUSE call.
///
/// With `-o idmap=none` and a backend that can act as another user (the agent running as root),
/// changes are made under these credentials, so ownership of new entries and permission errors
/// are the sandbox kernel's own. `nil` (the default) means: act as the backend's own user.
public struct CallerIdentity: Sendable, Hashable, Codable {
  public var uid: UInt32
  public var gid: UInt32
  /// Supplementary groups, as `/proc/PID/status` lists them.
  public var groups: [UInt32]

  public init(uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
    self.uid = uid
    self.gid = gid
    self.groups = groups
  }

  /// The caller of the request being answered. The FUSE bridge binds it for the request's task;
  /// the write-back drain binds the journaled caller of each change it applies.
  @TaskLocal public static var current: CallerIdentity?
}
