import CPty
import Foundation
import Glibc

/// A process started by `process.Process/Start`, from spawn until it has been reaped and its
/// output drained. Its output goes to every subscriber (the Start stream and any `Connect`
/// streams), as envd's multiplexed channels do: a slow subscriber slows the process down, and
/// output produced while no one listens is read and dropped.
final class ManagedProcess: @unchecked Sendable {
  let pid: pid_t
  let config: ProcessConfig
  let tag: String?
  /// True when the process runs on a pseudo-terminal.
  let hasPTY: Bool

  private let lock = NSLock()
  private var reaped = false
  private var subscribers: [ObjectIdentifier: OutputSubscription] = [:]
  /// Set once the end event went out; later subscribers get it at once.
  private var ended: ProcessExit?
  private var stdinFD: Int32?
  /// The PTY master: input, resize; closed once the process has ended.
  private var ptyFD: Int32?
  /// Serializes stdin and PTY writes, resizes and closes, off the cooperative pool.
  private let stdinQueue: DispatchQueue

  private init(child: SpawnedChild, config: ProcessConfig, tag: String?) {
    pid = child.pid
    self.config = config
    self.tag = tag
    hasPTY = child.pty != nil
    stdinFD = child.stdin
    ptyFD = child.pty
    stdinQueue = DispatchQueue(label: "sandbox-agent.stdin.\(child.pid)")
  }

  /// Spawns the process, lists it in `table` and starts the threads that read its output and
  /// reap it. The returned subscription (for the Start stream) exists before any output is read.
  /// `onEnd` runs once, after the process was reaped and just before its end event.
  static func start(
    plan: SpawnPlan, config: ProcessConfig, tag: String?, table: ProcessTable,
    onEnd: @escaping @Sendable (ManagedProcess, ProcessExit) -> Void
  ) throws(SpawnError) -> (ManagedProcess, OutputSubscription) {
    let child = try ProcessSpawner.spawn(plan)
    let process = ManagedProcess(child: child, config: config, tag: tag)
    guard case .live(let subscription) = process.subscribe() else {
      fatalError("a process that has not started cannot have ended")
    }
    // Listed before the pump runs, so a quick exit cannot remove it before it was added.
    table.insert(process)
    OutputPump(process: process, outputs: child.outputs, onEnd: onEnd).start()
    return (process, subscription)
  }

  /// What `subscribe()` finds: a live output stream, or the end of a process that is over.
  enum Attachment {
    case live(OutputSubscription)
    case ended(ProcessExit)
  }

  /// A new subscriber gets the output from now on, then the end event.
  func subscribe() -> Attachment {
    lock.withLock {
      if let ended { return .ended(ended) }
      let subscription = OutputSubscription()
      let key = ObjectIdentifier(subscription)
      subscribers[key] = subscription
      subscription.onCancel { [weak self] in
        guard let self else { return }
        _ = lock.withLock { subscribers.removeValue(forKey: key) }
      }
      return .live(subscription)
    }
  }

  var isRunning: Bool { lock.withLock { !reaped } }

  // MARK: Called by the pump

  /// Forwards a chunk to every subscriber, waiting for room at each; dropped when no one listens.
  func deliver(_ event: ProcessEvent) {
    for subscription in lock.withLock({ Array(subscribers.values) }) {
      subscription.deliver(event)
    }
  }

  func markReaped() {
    lock.withLock { reaped = true }
  }

  func finish(_ exit: ProcessExit) {
    let listening = lock.withLock {
      ended = exit
      defer { subscribers = [:] }
      return Array(subscribers.values)
    }
    for subscription in listening { subscription.finish(exit) }
    stdinQueue.async {
      let fds = self.lock.withLock { () -> [Int32] in
        defer { (self.stdinFD, self.ptyFD) = (nil, nil) }
        return [self.stdinFD, self.ptyFD].compactMap { $0 }
      }
      for fd in fds { close(fd) }
    }
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
    if hasPTY {
      return "tty assigned to process — input should be written to the pty, not the stdin"
    }
    return await onStdinQueue {
      guard let fd = self.lock.withLock({ self.stdinFD }) else {
        return "stdin not enabled or closed"
      }
      return Self.writeAll(data, to: fd, pid: self.pid, stream: "stdin", timeout: timeout)
    }
  }

  /// Writes all of `data` to the PTY, as typed on its keyboard; nil or an error text.
  func writePTY(_ data: Data, timeout: Duration = .seconds(30)) async -> String? {
    guard hasPTY else {
      return "tty not assigned to process — input should be written to the stdin, not the tty"
    }
    return await onStdinQueue {
      guard let fd = self.lock.withLock({ self.ptyFD }) else {
        return "error writing to tty of process '\(self.pid)': file already closed"
      }
      return Self.writeAll(data, to: fd, pid: self.pid, stream: "tty", timeout: timeout)
    }
  }

  /// Sets the PTY's size (the kernel sends SIGWINCH to its foreground process group).
  func resizePTY(_ size: PTYSize) async -> String? {
    guard hasPTY else { return "tty not assigned to process" }
    return await onStdinQueue {
      guard let fd = self.lock.withLock({ self.ptyFD }) else { return "file already closed" }
      // Go's pty.Winsize holds uint16s: larger values wrap as envd's conversion does.
      let cols = UInt16(truncatingIfNeeded: size.cols)
      let rows = UInt16(truncatingIfNeeded: size.rows)
      return cpty_set_size(fd, cols, rows) == 0 ? nil : errnoText()
    }
  }

  private func onStdinQueue(_ work: @escaping @Sendable () -> String?) async -> String? {
    await withCheckedContinuation { (result: CheckedContinuation<String?, Never>) in
      stdinQueue.async { result.resume(returning: work()) }
    }
  }

  /// Closes stdin (EOF for the process) after pending writes; nil or an error text.
  func closeStdin(_ completion: @escaping @Sendable (String?) -> Void) {
    if hasPTY {
      return completion("cannot close stdin for PTY process — send Ctrl+D (0x04) instead")
    }
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

  private static func writeAll(
    _ data: Data, to fd: Int32, pid: pid_t, stream: String, timeout: Duration
  ) -> String? {
    let deadline = ContinuousClock.now + timeout
    return data.withUnsafeBytes { raw -> String? in
      var offset = 0
      while offset < raw.count {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let remaining = deadline - ContinuousClock.now
        let milliseconds = max(0, Int32(remaining.components.seconds * 1000))
        let ready = poll(&poller, 1, milliseconds)
        if ready < 0 && errno == EINTR { continue }
        if ready == 0 { return "error writing to \(stream) of process '\(pid)': timed out" }
        let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
        if written < 0 {
          if errno == EINTR || errno == EAGAIN { continue }
          let file = stream == "stdin" ? "|1" : "/dev/ptmx"
          return "error writing to \(stream) of process '\(pid)': write \(file): \(errnoText())"
        }
        offset += written
      }
      return nil
    }
  }
}

/// One subscriber's share of a process's output: an event stream with at most `OutputGate.limit`
/// chunks in flight. Cancelling it (the stream's consumer went away) unblocks the pump.
final class OutputSubscription: @unchecked Sendable {
  let events: AsyncStream<ProcessEvent>
  let gate = OutputGate()
  private let continuation: AsyncStream<ProcessEvent>.Continuation

  init() {
    (events, continuation) = AsyncStream.makeStream(of: ProcessEvent.self)
    continuation.onTermination = { [gate] _ in gate.detach() }
  }

  /// `action` runs when the consumer goes away or the stream ends.
  func onCancel(_ action: @escaping @Sendable () -> Void) {
    continuation.onTermination = { [gate] _ in
      gate.detach()
      action()
    }
  }

  /// Forwards a chunk, waiting for room; dropped when this subscriber is gone.
  func deliver(_ event: ProcessEvent) {
    guard gate.enter() else { return }
    switch continuation.yield(event) {
    case .enqueued: break
    case .dropped, .terminated: gate.leave()
    @unknown default: gate.leave()
    }
  }

  func finish(_ exit: ProcessExit) {
    continuation.yield(.end(exit))
    continuation.finish()
  }

  /// The consumer is done (its stream ended or was aborted).
  func cancel() {
    gate.detach()
    continuation.finish()
  }
}
