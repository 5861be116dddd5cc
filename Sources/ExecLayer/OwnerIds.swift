import Backend
import Synchronization

/// Owner and group names (what stock envd's EntryInfo gives) to numeric ids, from the sandbox's
/// own user and group databases, read through a process (`getent`, else /etc/passwd and
/// /etc/group). The process sees what envd's name lookup sees, where envd's file routes may be
/// confined to a folder (`--root`). A name that is all digits and not in the tables is the id
/// itself: envd prints the number for an id with no name. Another name missing from the tables
/// reads them again, at most once a second (a user added since).
public final class OwnerIds: Sendable {
  private struct Tables {
    var users: [String: UInt32] = [:]
    var groups: [String: UInt32] = [:]
    var readAt: ContinuousClock.Instant?
  }

  private let tables = Mutex(Tables())
  /// One reading at a time; the others wait for it.
  private let reading = Mutex<Task<Void, Never>?>(nil)
  private let executor: any ProcessExecutor
  private let rereadInterval: Duration

  static let script = #"""
    if command -v getent >/dev/null 2>&1; then getent passwd; echo '#groups'; getent group
    else cat /etc/passwd; echo '#groups'; cat /etc/group; fi
    """#

  public init(executor: any ProcessExecutor, rereadInterval: Duration = .seconds(1)) {
    self.executor = executor
    self.rereadInterval = rereadInterval
  }

  /// `attributes` with `uid` and `gid` filled from its owner and group names, where known.
  public func resolve(_ attributes: RemoteAttributes) async -> RemoteAttributes {
    var result = attributes
    if result.uid == nil, let name = attributes.owner { result.uid = await id(ofUser: name) }
    if result.gid == nil, let name = attributes.group { result.gid = await id(ofGroup: name) }
    return result
  }

  public func id(ofUser name: String) async -> UInt32? {
    await id(of: name, in: \.users)
  }

  public func id(ofGroup name: String) async -> UInt32? {
    await id(of: name, in: \.groups)
  }

  private func id(of name: String, in table: KeyPath<Tables, [String: UInt32]>) async -> UInt32? {
    guard !name.isEmpty else { return nil }
    let (known, stale) = tables.withLock { tables in
      (
        tables[keyPath: table][name],
        tables.readAt.map { ContinuousClock.now - $0 >= rereadInterval } ?? true
      )
    }
    if let known { return known }
    // A number not in the tables is an id without a name (a reading would not help).
    if let number = UInt32(name) { return number }
    if stale {
      await reread()
      if let known = tables.withLock({ $0[keyPath: table][name] }) { return known }
    }
    return nil
  }

  private func reread() async {
    let task = reading.withLock { reading -> Task<Void, Never> in
      if let running = reading { return running }
      let task = Task { await self.read() }
      reading = task
      return task
    }
    await task.value
    reading.withLock { if $0 == task { $0 = nil } }
  }

  private func read() async {
    let outcome = try? await executor.run(ProcessCommand("/bin/sh", ["-c", Self.script]))
    let text = outcome.map { String(decoding: $0.stdout, as: UTF8.self) } ?? ""
    let (users, groups) = Self.parse(text)
    tables.withLock { tables in
      // A failed reading keeps what was known.
      if !users.isEmpty { tables.users = users }
      if !groups.isEmpty { tables.groups = groups }
      tables.readAt = .now
    }
  }

  /// `name:x:ID:...` lines; users before the `#groups` line, groups after.
  public static func parse(_ text: String) -> (users: [String: UInt32], groups: [String: UInt32]) {
    var users: [String: UInt32] = [:]
    var groups: [String: UInt32] = [:]
    var inGroups = false
    for line in text.split(separator: "\n") {
      if line == "#groups" {
        inGroups = true
        continue
      }
      let fields = line.split(separator: ":", omittingEmptySubsequences: false)
      guard fields.count >= 3, !fields[0].isEmpty, let id = UInt32(fields[2]) else { continue }
      let name = String(fields[0])
      // The first entry wins, as getpwnam's does.
      if inGroups {
        if groups[name] == nil { groups[name] = id }
      } else if users[name] == nil {
        users[name] = id
      }
    }
    return (users, groups)
  }
}
