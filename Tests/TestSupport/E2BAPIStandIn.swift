import Foundation

/// Tests/E2BStandIn/e2b_api_stand_in.py on a free loopback port: E2B's API for the one call a
/// client makes to connect a sandbox (the only part of E2B that cannot run here).
public final class RunningE2BAPIStandIn: @unchecked Sendable {
  public let child: ChildProcess
  public let url: String
  /// One JSON line per request received.
  public let requestLog: String

  public static var script: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("E2BStandIn/e2b_api_stand_in.py").path
  }

  /// `arguments`: the script's own, e.g. `--api-key K --sandbox ID --envd-token T`.
  public init(arguments: [String], requestLog: String) throws {
    self.requestLog = requestLog
    let child = try ChildProcess(
      executable: "/usr/bin/env",
      arguments: ["python3", Self.script, "--log", requestLog] + arguments)
    self.child = child
    var found: String?
    _ = child.waitFor(timeout: 30) {
      found = RunningAgent.listeningURL(in: child.standardOutput)
      return found != nil || !child.isRunning
    }
    guard let found else {
      child.stop(grace: 1)
      throw TestSupportError("the E2B API stand-in did not start: \(child.standardError)")
    }
    url = found
  }

  /// The requests received so far, decoded.
  public var requests: [[String: String]] {
    guard let text = try? String(contentsOfFile: requestLog, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
    }
  }

  public func stop() { child.stop(grace: 1) }
  deinit { child.stop(grace: 1) }
}
