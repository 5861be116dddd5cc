import ArgumentParser
import Foundation

/// `sandbox-mount sync MOUNTPOINT`: waits until every change made through the mount reached
/// the sandbox. The wait is an fsync of the mountpoint (the daemon drains its journal first);
/// the progress comes from the daemon's control socket.
struct SyncCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sync",
    abstract: "Wait until every change made through MOUNTPOINT has reached the sandbox.")

  @Argument(help: "A sandbox-mount mountpoint.")
  var mountpoint: String

  @Flag(help: "Try the changes the sandbox refused once more first.")
  var retryFailed = false

  @Flag(help: "Drop the changes the sandbox refused (their data is lost), then sync.")
  var discardFailed = false

  func run() throws {
    let path = try ControlClient.resolve(mountpoint)
    let socket = StateFolder.controlSocket(forMountpoint: path)
    if retryFailed || discardFailed {
      guard ControlSocket.ask(discardFailed ? "discard-failed" : "retry-failed", at: socket) != nil
      else {
        throw ControlClient.failure("no sandbox-mount with write-back answers for \(path)")
      }
    }
    let progress = isatty(STDERR_FILENO) == 1 ? ProgressBar(socket: socket) : nil
    progress?.start()
    let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard descriptor >= 0 else {
      progress?.stop()
      throw ControlClient.failure("cannot open \(path): \(String(cString: strerror(errno)))")
    }
    let synced = fsync(descriptor)
    let failure = errno
    close(descriptor)
    progress?.stop()
    guard synced == 0 else {
      var message = "sync of \(path) failed: \(String(cString: strerror(failure)))"
      if let status = ControlClient.status(socket), let failures = status["failures"] as? [String],
        !failures.isEmpty
      {
        message +=
          "\nthe sandbox refused \(failures.count) changes (kept locally; see `sandbox-mount status`, then `sync --retry-failed` or `sync --discard-failed`):\n  "
          + failures.prefix(10).joined(separator: "\n  ")
      }
      throw ControlClient.failure(message)
    }
  }
}

/// `sandbox-mount status MOUNTPOINT [--json]`.
struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Show a mount's backend, connection, pending changes, failures and caches.")

  @Argument(help: "A sandbox-mount mountpoint.")
  var mountpoint: String

  @Flag(help: "Print the status as one JSON object.")
  var json = false

  func run() throws {
    let path = try ControlClient.resolve(mountpoint)
    let socket = StateFolder.controlSocket(forMountpoint: path)
    guard let reply = ControlSocket.ask("status", at: socket) else {
      throw ControlClient.failure(
        "no sandbox-mount answers for \(path) (not mounted by sandbox-mount, or mounted by another user)"
      )
    }
    if json {
      print(reply.trimmingCharacters(in: .whitespacesAndNewlines))
      return
    }
    guard let status = ControlClient.parse(reply) else {
      throw ControlClient.failure("unreadable status: \(reply)")
    }
    print(ControlClient.describe(status))
  }
}

enum ControlClient {
  static func resolve(_ mountpoint: String) throws -> String {
    guard let resolved = realpath(mountpoint, nil) else {
      throw failure("\(mountpoint): \(String(cString: strerror(errno)))")
    }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  static func status(_ socket: String) -> [String: Any]? {
    ControlSocket.ask("status", at: socket).flatMap(parse)
  }

  static func parse(_ reply: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(reply.utf8))) as? [String: Any]
  }

  static func failure(_ message: String) -> ValidationError { ValidationError(message) }

  static func describe(_ status: [String: Any]) -> String {
    func value(_ key: String) -> String { status[key].map { "\($0)" } ?? "-" }
    var lines = [
      "mountpoint:  \(value("mountpoint"))",
      "sandbox:     \(value("url")) root \(value("root"))",
      "backend:     \(value("backend"))",
      "write-back:  \(value("writeBack"))"
        + (status["stateDir"].map { " (journal in \($0))" } ?? ""),
      "connection:  \(value("connection"))",
      "pending:     \(value("pendingChanges")) changes, \(bytes(status["pendingBytes"]))",
      "applied:     \(value("appliedChanges")) changes, \(bytes(status["appliedBytes"])) since mount",
      "cache:       memory \(bytes(status["memoryCacheBytes"])), disk \(value("diskCache"))",
    ]
    let failures = status["failures"] as? [String] ?? []
    lines.append("failures:    \(failures.count)")
    lines += failures.prefix(20).map { "  " + $0 }
    let conflicts = status["conflicts"] as? [String] ?? []
    lines.append("conflicts:   \(conflicts.count)")
    lines += conflicts.prefix(20).map { "  " + $0 }
    return lines.joined(separator: "\n")
  }

  static func bytes(_ value: Any?) -> String {
    guard let number = (value as? NSNumber)?.doubleValue else { return "-" }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var amount = number
    var unit = 0
    while amount >= 1024 && unit < units.count - 1 {
      amount /= 1024
      unit += 1
    }
    return unit == 0 ? "\(Int(amount)) B" : String(format: "%.1f %@", amount, units[unit])
  }
}

/// A one-line progress bar on stderr while a sync waits: changes and bytes left, rate, ETA.
final class ProgressBar: @unchecked Sendable {
  private let socket: String
  private let done = DispatchSemaphore(value: 0)
  private let finished = DispatchSemaphore(value: 0)

  init(socket: String) {
    self.socket = socket
  }

  func start() {
    Thread { [self] in
      var first: (changes: Double, time: Date)?
      var total = 0.0
      while done.wait(timeout: .now() + 0.2) == .timedOut {
        guard let status = ControlClient.status(socket) else { continue }
        let left = (status["pendingChanges"] as? NSNumber)?.doubleValue ?? 0
        let applied = (status["appliedChanges"] as? NSNumber)?.doubleValue ?? 0
        if first == nil { first = (applied, Date()) }
        total = max(total, left + applied - (first?.changes ?? 0))
        let elapsed = Date().timeIntervalSince(first?.time ?? Date())
        let rate = elapsed > 0 ? (applied - (first?.changes ?? 0)) / elapsed : 0
        let fraction = total > 0 ? 1 - left / total : 1
        let width = 30
        let filled = Int((fraction * Double(width)).rounded())
        let bar =
          String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let eta = rate > 0 ? String(format: "%.0f s", left / rate) : "?"
        let line = String(
          format: "\r[%@] %.0f changes, %@ left, %.0f changes/s, ETA %@  ", bar, left,
          ControlClient.bytes(status["pendingBytes"]), rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
      }
      FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
      finished.signal()
    }.start()
  }

  func stop() {
    done.signal()
    finished.wait()
  }
}
