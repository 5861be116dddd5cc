import Foundation

/// A real `sandbox-agent` on a free loopback port, serving `root`.
public final class RunningAgent: @unchecked Sendable {
  public let child: ChildProcess
  public let url: String
  public let root: String

  /// Starts the agent with `--listen 127.0.0.1:0` (or `listen`, e.g. to restart one on its old
  /// port) and waits for its `listening on http://HOST:PORT` line on standard output.
  public init(
    root: String, arguments: [String] = [], environment: [String: String]? = nil,
    listen: String = "127.0.0.1:0"
  ) throws {
    self.root = root
    let child = try ChildProcess(
      executable: BuiltProducts.executable("sandbox-agent"),
      arguments: ["--listen", listen, "--root", root] + arguments,
      environment: environment)
    self.child = child
    var found: String?
    _ = child.waitFor(timeout: 30) {
      found = Self.listeningURL(in: child.standardOutput)
      return found != nil || !child.isRunning
    }
    guard let found else {
      child.stop(grace: 1)
      throw TestSupportError("agent did not start: \(child.standardOutput) \(child.standardError)")
    }
    url = found
  }

  static func listeningURL(in output: String) -> String? {
    guard let range = output.range(of: "listening on ") else { return nil }
    let rest = output[range.upperBound...]
    guard let end = rest.firstIndex(of: "\n") else { return nil }
    return String(rest[..<end])
  }

  public func stop() { child.stop() }
  deinit { child.stop(grace: 1) }
}
