import Backend
import ExecLayer
import Foundation
import TestSupport

/// Runs commands on this machine as if it were a sandbox whose root is `root`: working folders
/// are inside it, and `SANDBOX_ROOT` tells the exec script where it is (as sandbox-agent does).
/// `binarySafeOutput: false` presents a text-only output channel (Vercel's, LangSmith's).
struct LocalShellExecutor: ProcessExecutor {
  let root: String
  let binarySafeOutput: Bool

  init(root: String, binarySafeOutput: Bool = true) {
    self.root = root
    self.binarySafeOutput = binarySafeOutput
  }

  func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
    try await withCheckedThrowingContinuation { continuation in
      // Blocking pipe I/O stays off the cooperative pool.
      Thread.detachNewThread {
        continuation.resume(with: Result { try runBlocking(command) })
      }
    }
  }

  private func runBlocking(_ command: ProcessCommand) throws -> ProcessOutcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command.executable)
    process.arguments = command.arguments
    process.environment = command.environment.merging(
      ["SANDBOX_ROOT": root, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
    ) { $1 }
    process.currentDirectoryURL = URL(
      fileURLWithPath: root + (command.workingDirectory == "/" ? "" : command.workingDirectory))
    let input = Pipe()
    let output = Pipe()
    let errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    try ChildProcess.launch(process)
    let writer = Thread {
      input.fileHandleForWriting.write(Data(command.standardInput))
      try? input.fileHandleForWriting.close()
    }
    writer.start()
    let stderrData = LockedData()
    let stderrReader = Thread { stderrData.set(errors.fileHandleForReading.readDataToEndOfFile()) }
    stderrReader.start()
    let stdout = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while stderrData.get() == nil { Thread.sleep(forTimeInterval: 0.001) }
    let exited = process.terminationReason == .exit
    return ProcessOutcome(
      stdout: [UInt8](stdout), stderr: [UInt8](stderrData.get() ?? Data()),
      exitCode: exited ? process.terminationStatus : nil,
      status: exited ? "exit status \(process.terminationStatus)" : "killed")
  }

}

private final class LockedData: @unchecked Sendable {
  private let lock = NSLock()
  private var data: Data?
  func set(_ value: Data) { lock.withLock { data = value } }
  func get() -> Data? { lock.withLock { data } }
}
