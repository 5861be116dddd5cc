import Foundation
import Glibc
import NIOPosix

/// Who a client says made a change (`"caller"` in a request, docs/agent-extension.md §1): the
/// agent then makes it with these credentials, so the kernel's own permission checks and owner
/// rules apply.
struct ExtensionCaller: Sendable, Equatable {
  var uid: UInt32
  var gid: UInt32
  var groups: [UInt32]

  /// `uid=N;gid=N;groups=N,N` (the `Sandbox-Agent-Caller` header); spaces are ignored.
  init(header: String) throws(ErrnoError) {
    var fields: [String: String] = [:]
    for part in header.split(separator: ";") {
      let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      guard pair.count == 2 else { throw ErrnoError(EINVAL, "malformed caller: \(header)") }
      fields[pair[0].trimmingCharacters(in: .whitespaces)] = pair[1].trimmingCharacters(
        in: .whitespaces)
    }
    guard let uid = fields["uid"].flatMap({ UInt32($0) }),
      let gid = fields["gid"].flatMap({ UInt32($0) })
    else { throw ErrnoError(EINVAL, "caller needs uid and gid: \(header)") }
    var groups: [UInt32] = []
    for text in (fields["groups"] ?? "").split(separator: ",") {
      guard let group = UInt32(text.trimmingCharacters(in: .whitespaces)) else {
        throw ErrnoError(EINVAL, "malformed caller groups: \(header)")
      }
      groups.append(group)
    }
    self.init(uid: uid, gid: gid, groups: groups)
  }

  init(uid: UInt32, gid: UInt32, groups: [UInt32]) {
    self.uid = uid
    self.gid = gid
    self.groups = groups
  }
}

extension KeyedDecodingContainer where Key == ProtoKey {
  /// `"caller": {"uid","gid","groups"}`; nil when absent or null.
  func caller() throws -> ExtensionCaller? {
    let key = ProtoKey(stringValue: "caller")
    guard contains(key), try !decodeNil(forKey: key) else { return nil }
    let nested = try nestedContainer(keyedBy: ProtoKey.self, forKey: key)
    guard let uid = try nested.protoUInt32("uid"), let gid = try nested.protoUInt32("gid") else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: codingPath + [key], debugDescription: "caller needs uid and gid"))
    }
    var groups: [UInt32] = []
    let groupsKey = ProtoKey(stringValue: "groups")
    if nested.contains(groupsKey), try !nested.decodeNil(forKey: groupsKey) {
      var list = try nested.nestedUnkeyedContainer(forKey: groupsKey)
      while !list.isAtEnd {
        if let number = try? list.decode(UInt32.self) {
          groups.append(number)
        } else if let number = UInt32(try list.decode(String.self)) {
          groups.append(number)
        } else {
          throw DecodingError.typeMismatch(
            UInt32.self,
            .init(codingPath: list.codingPath, debugDescription: "invalid caller group"))
        }
      }
    }
    return ExtensionCaller(uid: uid, gid: gid, groups: groups)
  }
}

/// Switches the filesystem credentials of the current thread only: `setfsuid`, `setfsgid` and
/// the raw `setgroups` syscall are per thread in the kernel (glibc's `setgroups` would change
/// every thread of the process). With an fsuid other than 0 the kernel also drops the file
/// capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_MKNOD …), so every
/// check is the caller's. Only a root agent can do this; any other agent acts as itself.
enum CallerCredentials {
  /// Whether `caller` is honoured: the agent runs as root.
  static let honoured: Bool = geteuid() == 0

  /// The agent's own credentials, put back after every switch.
  private static let agent: (uid: UInt32, gid: UInt32, groups: [UInt32]) = {
    let count = getgroups(0, nil)
    var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
    let read = groups.isEmpty ? 0 : getgroups(count, &groups)
    return (geteuid(), getegid(), Array(groups.prefix(Int(max(read, 0)))))
  }()

  /// Runs `body` as `caller` on this thread (as the agent when nil or not honoured), and is
  /// back to the agent's credentials afterwards, also when `body` throws. Must run on a
  /// thread of its own for the job (NIO's thread pool), never on an event loop or in a task.
  static func perform<T>(as caller: ExtensionCaller?, _ body: () throws(ErrnoError) -> T)
    throws(ErrnoError) -> T
  {
    guard honoured, let caller else { return try body() }
    precondition(
      MultiThreadedEventLoopGroup.currentEventLoop == nil
        && withUnsafeCurrentTask(body: { $0 == nil }),
      "caller credentials switched off the thread pool")
    try become(caller)
    defer { restore() }
    return try body()
  }

  /// Inside `perform(as: caller)`: runs `body` as the agent, then is `caller` again. For steps
  /// the kernel would not let the caller take although Linux's call would have (the exact
  /// mode of an entry the caller just made).
  static func asAgent<T>(suspending caller: ExtensionCaller?, _ body: () throws(ErrnoError) -> T)
    throws(ErrnoError) -> T
  {
    guard honoured, let caller else { return try body() }
    restore()
    defer {
      do {
        try become(caller)
      } catch {
        fatalError("cannot act as the caller again: \(error)")
      }
    }
    return try body()
  }

  /// Whether `caller` is in `group`, as the kernel's `in_group_p` sees it.
  static func isMember(_ caller: ExtensionCaller, of group: gid_t) -> Bool {
    caller.gid == group || caller.groups.contains(group)
  }

  private static func become(_ caller: ExtensionCaller) throws(ErrnoError) {
    // Read before the first switch: getgroups would answer this thread's switched groups.
    _ = agent
    _ = LinuxCredentials.setfsgid(caller.gid)
    guard LinuxCredentials.setfsgid(UInt32.max) == caller.gid else {
      restore()
      throw ErrnoError(EPERM, "cannot act as group \(caller.gid)")
    }
    if LinuxCredentials.setgroups(caller.groups) != 0 {
      let failure = errno
      restore()
      throw ErrnoError(failure, "cannot take the groups of the caller")
    }
    _ = LinuxCredentials.setfsuid(caller.uid)
    guard LinuxCredentials.setfsuid(UInt32.max) == caller.uid else {
      restore()
      throw ErrnoError(EPERM, "cannot act as user \(caller.uid)")
    }
  }

  /// fsuid first: it brings the file capabilities back. A thread that cannot be put back would
  /// serve later jobs with a stranger's rights: stop instead.
  private static func restore() {
    _ = LinuxCredentials.setfsuid(agent.uid)
    let groupsRestored = LinuxCredentials.setgroups(agent.groups) == 0
    _ = LinuxCredentials.setfsgid(agent.gid)
    guard groupsRestored, LinuxCredentials.setfsuid(UInt32.max) == agent.uid,
      LinuxCredentials.setfsgid(UInt32.max) == agent.gid
    else { fatalError("cannot restore the agent's credentials on a pool thread") }
  }
}

/// The raw syscalls, through glibc's `syscall` trampoline with a fixed prototype (as openat2).
/// `setfsuid(-1)` changes nothing and answers the current value.
enum LinuxCredentials {
  private typealias Syscall = @convention(c) (Int, Int, Int) -> Int

  private static let syscall: Syscall = {
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "syscall") else {
      fatalError("syscall(2) not found in libc")
    }
    return unsafeBitCast(symbol, to: Syscall.self)
  }()

  #if arch(x86_64)
    private static let (sysSetgroups, sysSetfsuid, sysSetfsgid) = (116, 122, 123)
  #elseif arch(arm64)
    private static let (sysSetgroups, sysSetfsuid, sysSetfsgid) = (159, 151, 152)
  #else
    #error("credential syscall numbers unknown for this architecture")
  #endif

  /// Returns the previous fsuid.
  static func setfsuid(_ uid: UInt32) -> UInt32 {
    UInt32(truncatingIfNeeded: syscall(sysSetfsuid, Int(uid), 0))
  }

  /// Returns the previous fsgid.
  static func setfsgid(_ gid: UInt32) -> UInt32 {
    UInt32(truncatingIfNeeded: syscall(sysSetfsgid, Int(gid), 0))
  }

  /// This thread's supplementary groups; 0, or -1 with errno.
  static func setgroups(_ groups: [UInt32]) -> Int32 {
    let result = groups.withUnsafeBufferPointer { buffer in
      syscall(sysSetgroups, groups.count, Int(bitPattern: buffer.baseAddress))
    }
    return result < 0 ? -1 : 0
  }
}
