import Foundation
import Glibc

/// Two threads per process, so nothing blocks Swift's cooperative pool: one reaps the child with a
/// blocking `waitpid`, the other `poll`s its stdout and stderr and forwards ≤32 KiB chunks.
/// When the child has exited, the pump drains what is already in the pipes and then sends the end
/// event, even if a grandchild still holds the pipes open (envd ends the stream at exit too).
struct OutputPump: Sendable {
  static let chunkSize = 32 * 1024

  let process: ManagedProcess
  let stdout: Int32
  let stderr: Int32
  let onEnd: @Sendable (ManagedProcess) -> Void

  func start() {
    var wake: [Int32] = [-1, -1]
    guard pipe(&wake) == 0 else {
      // Without a wake-up pipe, fall back to ending when both pipes close; the pump then reaps
      // the child itself, so it still needs a thread of its own.
      let fallback = Thread { self.runPump(wakeFD: -1, exitStatus: ExitStatusBox()) }
      fallback.name = "pump-\(process.pid)"
      fallback.start()
      return
    }
    for fd in wake { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    let (wakeRead, wakeWrite) = (wake[0], wake[1])
    let exitStatus = ExitStatusBox()
    let pid = process.pid
    let process = process
    let reaper = Thread {
      var status: Int32 = 0
      while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
      process.markReaped()
      exitStatus.set(status)
      var byte: UInt8 = 1
      _ = write(wakeWrite, &byte, 1)
      close(wakeWrite)
    }
    reaper.name = "reap-\(pid)"
    reaper.start()
    let pump = Thread { self.runPump(wakeFD: wakeRead, exitStatus: exitStatus) }
    pump.name = "pump-\(pid)"
    pump.start()
  }

  private func runPump(wakeFD: Int32, exitStatus: ExitStatusBox) {
    var open: [(fd: Int32, isStdout: Bool)] = [(stdout, true), (stderr, false)]
    var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
    var exited = false
    while !open.isEmpty && !exited {
      var pollers = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
      if wakeFD >= 0 { pollers.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)) }
      let ready = poll(&pollers, nfds_t(pollers.count), -1)
      if ready < 0 {
        if errno == EINTR { continue }
        break
      }
      if wakeFD >= 0, pollers.last!.revents != 0 { exited = true }
      var stillOpen: [(fd: Int32, isStdout: Bool)] = []
      for (index, stream) in open.enumerated() {
        if pollers[index].revents == 0 || readAvailable(stream, &buffer, maxChunks: 4) {
          stillOpen.append(stream)
        } else {
          close(stream.fd)
        }
      }
      open = stillOpen
    }
    // Exited (or all pipes closed): take what is already buffered, then stop reading.
    // A pipe holds at most 1 MiB, so 64 chunks empty it unless a grandchild keeps writing.
    for stream in open {
      _ = readAvailable(stream, &buffer, maxChunks: 64)
      close(stream.fd)
    }
    if wakeFD >= 0 {
      // Both pipes may close before the reaper is done: wait for it.
      var byte: UInt8 = 0
      while read(wakeFD, &byte, 1) < 0 && errno == EINTR {}
      close(wakeFD)
    } else {
      var status: Int32 = 0
      while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
      process.markReaped()
      exitStatus.set(status)
    }
    // envd drops the process from its table before the end event goes out: a client that saw
    // the end must not find it in List, nor signal it.
    onEnd(process)
    process.finish(ProcessExit(waitStatus: exitStatus.get()))
  }

  /// Reads until the pipe is empty (or `maxChunks` were read, so one busy stream cannot starve
  /// the other); false at end of file or on error.
  private func readAvailable(
    _ stream: (fd: Int32, isStdout: Bool), _ buffer: inout [UInt8], maxChunks: Int
  ) -> Bool {
    for _ in 0..<maxChunks {
      let count = buffer.withUnsafeMutableBytes { read(stream.fd, $0.baseAddress, $0.count) }
      if count > 0 {
        let chunk = Data(buffer[0..<count])
        process.deliver(stream.isStdout ? .stdout(chunk) : .stderr(chunk))
        continue
      }
      if count < 0 && errno == EINTR { continue }
      return count < 0 && errno == EAGAIN
    }
    return true
  }
}

/// The reaper's result, read by the pump after the wake-up byte.
final class ExitStatusBox: @unchecked Sendable {
  private let lock = NSLock()
  private var status: Int32 = 0
  func set(_ value: Int32) { lock.withLock { status = value } }
  func get() -> Int32 { lock.withLock { status } }
}
