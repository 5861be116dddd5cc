import Foundation

/// A test switch that makes `GET /files` identity bodies end early, as a cut connection or a
/// file shrinking mid-transfer would, so the mount's truncation check can be tested for real.
/// With `--protocol coreweave` it cuts `ReadFile` contents and the stdout of `StreamExec`
/// commands that print at least `largeOutput` bytes (a page: a file's data); smaller outputs,
/// the exec layer's metadata answers in tests, are left whole.
/// Off unless the environment asks for it; never set in normal use.
///
///     SANDBOX_AGENT_FAULT_TRUNCATE_BYTES=N     every body ends N bytes early
///     SANDBOX_AGENT_FAULT_TRUNCATE_FILE=PATH   bodies end N bytes early while PATH holds N
///                                              (tests switch the fault on and off at run time)
enum TruncationFault {
  private static let fixedBytes = ProcessInfo.processInfo.environment[
    "SANDBOX_AGENT_FAULT_TRUNCATE_BYTES"
  ].flatMap { Int($0) }
  private static let controlFile = ProcessInfo.processInfo.environment[
    "SANDBOX_AGENT_FAULT_TRUNCATE_FILE"]

  static let largeOutput = 4096

  /// Bytes to leave out of the next body: 0 unless the switch is on.
  static func bytesToCut() -> Int {
    if let fixedBytes { return max(0, fixedBytes) }
    // A few bytes from a test's control file, read only when the switch is configured.
    guard let controlFile, let text = try? String(contentsOfFile: controlFile, encoding: .utf8)
    else { return 0 }
    return max(0, Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0)
  }
}
