import Foundation

/// Running processes by pid, as envd's `Service.processes`: added at start, removed once the
/// process was reaped, before its end event is sent.
final class ProcessTable: Sendable {
  private let lock = NSLock()
  nonisolated(unsafe) private var byPID: [pid_t: ManagedProcess] = [:]

  func insert(_ process: ManagedProcess) {
    lock.withLock { byPID[process.pid] = process }
  }

  func remove(_ process: ManagedProcess) {
    lock.withLock {
      if byPID[process.pid] === process { byPID[process.pid] = nil }
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
      throw ConnectError(.unimplemented, "invalid input type <nil>")
    }
  }
}
