import Foundation

/// Running processes by pid, as envd's `Service.processes`: added at start, removed once the
/// process was reaped, before its end event is sent. The end of a process is kept for 30 s after
/// (envd 0.6.12's `terminated` cache), so a `Connect` that comes late still learns the exit.
final class ProcessTable: Sendable {
  /// envd's `terminatedRetentionTTL`.
  static let retention = Duration.seconds(30)

  private struct Retained {
    var tag: String?
    var exit: ProcessExit
    var expiry: ContinuousClock.Instant
  }

  private let lock = NSLock()
  nonisolated(unsafe) private var byPID: [pid_t: ManagedProcess] = [:]
  nonisolated(unsafe) private var terminated: [pid_t: Retained] = [:]

  /// A new process drops any retained end under its pid or its tag, so a `Connect` never gets
  /// a predecessor's exit.
  func insert(_ process: ManagedProcess) {
    lock.withLock {
      byPID[process.pid] = process
      terminated[process.pid] = nil
      if let tag = process.tag { terminated = terminated.filter { $0.value.tag != tag } }
    }
  }

  /// The process has ended with `exit`: no longer listed, its end retained.
  func remove(_ process: ManagedProcess, exit: ProcessExit) {
    let now = ContinuousClock.now
    lock.withLock {
      guard byPID[process.pid] === process else { return }
      byPID[process.pid] = nil
      terminated = terminated.filter { $0.value.expiry > now }
      terminated[process.pid] = Retained(
        tag: process.tag, exit: exit, expiry: now + Self.retention)
    }
  }

  var all: [ManagedProcess] {
    lock.withLock { byPID.values.sorted { $0.pid < $1.pid } }
  }

  /// envd's `getProcess`: `not_found` for an unknown pid or tag.
  func find(_ selector: ProcessSelector) throws(ConnectError) -> ManagedProcess {
    switch selector {
    case .pid(let pid):
      guard let process = lock.withLock({ byPID[pid_t(bitPattern: pid)] }) else {
        throw ConnectError(.notFound, "process with pid \(pid) not found")
      }
      return process
    case .tag(let tag):
      guard let process = all.first(where: { $0.tag == tag }) else {
        throw ConnectError(.notFound, "process with tag \(tag) not found")
      }
      return process
    case .none:
      throw ConnectError(.invalidArgument, "invalid input type <nil>")
    }
  }

  /// envd's `lookupTerminated`: the retained end of a process that ended less than 30 s ago.
  func retainedEnd(_ selector: ProcessSelector) -> (pid: UInt32, exit: ProcessExit)? {
    let now = ContinuousClock.now
    return lock.withLock {
      let match: (key: pid_t, value: Retained)?
      switch selector {
      case .pid(let pid):
        match = terminated[pid_t(bitPattern: pid)].map { (pid_t(bitPattern: pid), $0) }
      case .tag(let tag):
        match = terminated.sorted { $0.key < $1.key }.first { $0.value.tag == tag }
      case .none:
        match = nil
      }
      guard let match, match.value.expiry > now else { return nil }
      return (UInt32(bitPattern: match.key), match.value.exit)
    }
  }
}
