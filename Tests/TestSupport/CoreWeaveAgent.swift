import Foundation

/// `sandbox-agent --protocol coreweave` with an API key, and the `cwsandbox://` mount of it.
public enum CoreWeaveAgent {
  public static let apiKey = "cwsandbox-test-key"
  public static let sandboxID = "mount-test"
  public static let arguments = ["--protocol", "coreweave", "--sandbox-id", sandboxID]
  public static let environment = ["SANDBOX_AGENT_TOKEN": apiKey]

  /// `cwsandbox://ID` with `--api-url` of the agent at `agentURL` (h2c) and a key file written
  /// into `folder` (the whole sandbox `/` is mounted, so the mount matches the agent's root).
  public static func mountTarget(agentURL: String, folder: String) throws -> (
    url: String, arguments: [String]
  ) {
    let keyFile = folder + "/cwsandbox-key"
    try apiKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
    return ("cwsandbox://\(sandboxID)", ["--api-url", agentURL, "--token-file", keyFile])
  }
}
