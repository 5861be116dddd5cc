import Foundation
import Glibc

/// A process started by `process.Process/Start`, from spawn until it has been reaped and its
/// output drained. Output goes to at most one subscriber (the Start stream); once that stream is
/// aborted the process keeps running and its output is read and dropped.
final class ManagedProcess: @unchecked Sendable {
  let pid: pid_t
  let config: ProcessConfig
  let tag: String?
  /// Events for the Start stream: data chunks, then one `.end`.
  let events: AsyncStream<ProcessEvent>
  let gate = OutputGate()

  private let continuation: AsyncStream<ProcessEvent>.Continuation
  private let lock = NSLock()
  private var reaped = false
  private var stdinFD: Int32?
  /// Serializes stdin writes and close, off the cooperative pool.
  private let stdinQueue: DispatchQueue

  private init(child: SpawnedChild, config: ProcessConfig, tag: String?) {
    pid = child.pid
    self.config = config
    self.tag = tag
    stdinFD = child.stdin
    stdinQueue = DispatchQueue(label: "sandbox-agent.stdin.\(child.pid)")
    (events, continuation) = AsyncStream.makeStream(of: ProcessEvent.self)
    continuation.onTermination = { [gate] _ in gate.detach() }
  }

  /// Spawns the process and starts the threads that read its output and reap it.
  /// `onEnd` runs once, after the process was reaped and just before its end event.
  static func start(
    plan: SpawnPlan, config: ProcessConfig, tag: String?,
    onEnd: @escaping @Sendable (ManagedProcess) -> Void
  ) throws(SpawnError) -> ManagedProcess {
    let child = try ProcessSpawner.spawn(plan)
    let process = ManagedProcess(child: child, config: config, tag: tag)
    OutputPump(process: process, stdout: child.stdout, stderr: child.stderr, onEnd: onEnd).start()
    return process
  }

  var isRunning: Bool { lock.withLock { !reaped } }

  // MARK: Called by the pump

  /// Forwards a chunk, waiting for room; dropped when no one listens any more.
  func deliver(_ event: ProcessEvent) {
    guard gate.enter() else { return }
    switch continuation.yield(event) {
    case .enqueued: break
    case .dropped, .terminated: gate.leave()
    @unknown default: gate.leave()
    }
  }

  func markReaped() {
    lock.withLock { reaped = true }
  }

  func finish(_ exit: ProcessExit) {
    continuation.yield(.end(exit))
    continuation.finish()
    closeStdin { _ in }
  }

  // MARK: Control

  /// envd's kill timeout (`Connect-Timeout-Ms` on Start): SIGKILL when it passes, whether or not
  /// anyone still listens to the stream.
  func killAfter(_ timeout: Duration) {
    let nanoseconds =
      timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
    DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) {
      [weak self] in
      _ = self?.signal(SIGKILL)
    }
  }

  /// `kill(2)` unless the process was already reaped (its pid may be reused by then).
  func signal(_ signal: Int32) -> String? {
    lock.lock()
    defer { lock.unlock() }
    guard !reaped else { return "os: process already finished" }
    return Glibc.kill(pid, signal) == 0 ? nil : errnoText()
  }

  /// Writes all of `data` to stdin; the completion gets an error text or nil.
  /// Gives up after `timeout` if the process does not read.
  func writeStdin(_ data: Data, timeout: Duration = .seconds(30)) async -> String? {
    await withCheckedContinuation { (result: CheckedContinuation<String?, Never>) in
      stdinQueue.async {
        guard let fd = self.lock.withLock({ self.stdinFD }) else {
          result.resume(returning: "stdin not enabled or closed")
          return
        }
        result.resume(returning: Self.writeAll(data, to: fd, pid: self.pid, timeout: timeout))
      }
    }
  }

  /// Closes stdin (EOF for the process) after pending writes; nil or an error text.
  func closeStdin(_ completion: @escaping @Sendable (String?) -> Void) {
    stdinQueue.async {
      let fd = self.lock.withLock { () -> Int32? in
        defer { self.stdinFD = nil }
        return self.stdinFD
      }
      guard let fd else { return completion(nil) }
      completion(close(fd) == 0 ? nil : errnoText())
    }
  }

  func closeStdin() async -> String? {
    await withCheckedContinuation { result in closeStdin { result.resume(returning: $0) } }
  }

  private static func writeAll(_ data: Data, to fd: Int32, pid: pid_t, timeout: Duration)
    -> String?
  {
    let deadline = ContinuousClock.now + timeout
    return data.withUnsafeBytes { raw -> String? in
      var offset = 0
      while offset < raw.count {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let remaining = deadline - ContinuousClock.now
        let milliseconds = max(0, Int32(remaining.components.seconds * 1000))
        let ready = poll(&poller, 1, milliseconds)
        if ready < 0 && errno == EINTR { continue }
        if ready == 0 { return "error writing to stdin of process '\(pid)': timed out" }
        let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
        if written < 0 {
          if errno == EINTR || errno == EAGAIN { continue }
          return "error writing to stdin of process '\(pid)': write |1: \(errnoText())"
        }
        offset += written
      }
      return nil
    }
  }
}
