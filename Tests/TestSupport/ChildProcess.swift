import Foundation

private let launchLock = NSLock()

/// A child process whose output is collected, and which is killed when stopped or deinitialized.
public final class ChildProcess: @unchecked Sendable {
  public let process = Process()
  private let lock = NSLock()
  private var collectedOutput = Data()
  private var collectedError = Data()

  public init(
    executable: String, arguments: [String], environment: [String: String]? = nil,
    currentDirectory: String? = nil
  ) throws {
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment {
      process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let outputPipe = Pipe()
    let errorPipe = Pipe()
    process.standardOutput = outputPipe
    process.standardError = errorPipe
    process.standardInput = FileHandle.nullDevice
    outputPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
      let data = handle.availableData
      guard let self else { return }
      self.lock.withLock { self.collectedOutput.append(data) }
    }
    errorPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
      let data = handle.availableData
      guard let self else { return }
      self.lock.withLock { self.collectedError.append(data) }
    }
    try Self.launch(process)
  }

  /// Starts `process`. Foundation's Process.run() crashes when threads launch children at once
  /// (corelibs issues 4772, 4795): every launch in the test process takes this one lock.
  public static func launch(_ process: Process) throws {
    try launchLock.withLock { try process.run() }
  }

  public var standardOutput: String {
    lock.withLock { String(decoding: collectedOutput, as: UTF8.self) }
  }
  public var standardError: String {
    lock.withLock { String(decoding: collectedError, as: UTF8.self) }
  }
  public var isRunning: Bool { process.isRunning }

  /// Polls `condition` until it holds or `timeout` passes.
  public func waitFor(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if condition() { return true }
      Thread.sleep(forTimeInterval: 0.02)
    }
    return condition()
  }

  /// Waits for exit up to `timeout`; returns the exit status, or nil if it is still running.
  @discardableResult
  public func waitForExit(timeout: TimeInterval) -> Int32? {
    guard waitFor(timeout: timeout, { !process.isRunning }) else { return nil }
    return process.terminationStatus
  }

  /// SIGTERM, then SIGKILL after `grace` seconds.
  public func stop(grace: TimeInterval = 5) {
    guard process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    if waitForExit(timeout: grace) == nil {
      kill(process.processIdentifier, SIGKILL)
      waitForExit(timeout: 5)
    }
  }

  deinit { stop(grace: 1) }
}

/// Runs a command to completion and returns its status and output.
@discardableResult
public func runCommand(
  _ arguments: [String], currentDirectory: String? = nil, environment: [String: String]? = nil,
  timeout: TimeInterval = 120
) throws -> (status: Int32, output: String, error: String) {
  let executable = arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/env"
  let rest = arguments[0].hasPrefix("/") ? Array(arguments.dropFirst()) : arguments
  let child = try ChildProcess(
    executable: executable, arguments: rest, environment: environment,
    currentDirectory: currentDirectory)
  guard let status = child.waitForExit(timeout: timeout) else {
    child.stop(grace: 1)
    throw TestSupportError("\(arguments.joined(separator: " ")) did not finish in \(timeout) s")
  }
  // Let the readability handlers drain what the child wrote last.
  Thread.sleep(forTimeInterval: 0.05)
  return (status, child.standardOutput, child.standardError)
}

public struct TestSupportError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}
