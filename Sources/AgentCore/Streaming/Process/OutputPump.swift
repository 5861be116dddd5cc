import Foundation
import Glibc

/// Where a chunk of output came from, and how large envd's chunks from there are.
enum OutputKind: Sendable {
  case stdout, stderr, pty

  /// envd reads pipes 32 KiB and the PTY 16 KiB at a time.
  var chunkSize: Int { self == .pty ? 16 * 1024 : 32 * 1024 }

  func event(_ chunk: Data) -> ProcessEvent {
    switch self {
    case .stdout: .stdout(chunk)
    case .stderr: .stderr(chunk)
    case .pty: .pty(chunk)
    }
  }
}

/// Two threads per process, so nothing blocks Swift's cooperative pool: one reaps the child with a
/// blocking `waitpid`, the other `poll`s its stdout and stderr (or its PTY) and forwards chunks.
/// When the child has exited, the pump drains what is already in the pipes and then sends the end
/// event, even if a grandchild still holds the pipes open (envd ends the stream at exit too).
struct OutputPump: Sendable {
  let process: ManagedProcess
  /// Read ends the pump owns and closes; a PTY master's read end is a dup of it.
  let outputs: [(fd: Int32, kind: OutputKind)]
  /// Runs once the child was reaped, with its exit, just before the end event goes out.
  let onEnd: @Sendable (ManagedProcess, ProcessExit) -> Void

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
    var open = outputs
    var buffer = [UInt8](repeating: 0, count: OutputKind.stdout.chunkSize)
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
      var stillOpen: [(fd: Int32, kind: OutputKind)] = []
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
    let exit = ProcessExit(waitStatus: exitStatus.get())
    onEnd(process, exit)
    process.finish(exit)
  }

  /// Reads until the pipe is empty (or `maxChunks` were read, so one busy stream cannot starve
  /// the other); false at end of file or on error (a PTY whose terminal side is closed reads EIO).
  private func readAvailable(
    _ stream: (fd: Int32, kind: OutputKind), _ buffer: inout [UInt8], maxChunks: Int
  ) -> Bool {
    let size = stream.kind.chunkSize
    for _ in 0..<maxChunks {
      let count = buffer.withUnsafeMutableBytes { read(stream.fd, $0.baseAddress, size) }
      if count > 0 {
        process.deliver(stream.kind.event(Data(buffer[0..<count])))
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
