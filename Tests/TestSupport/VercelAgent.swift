import Foundation

/// `sandbox-agent --protocol vercel` with a bearer token, and the `vercel://` mount of it.
public enum VercelAgent {
  public static let token = "vercel-test-token"
  public static let sandboxName = "mount-test"
  public static let arguments = ["--protocol", "vercel"]
  public static let environment = ["SANDBOX_AGENT_TOKEN": token]

  /// `vercel://NAME` with `--api-url` of the agent at `agentURL` and a token file written into
  /// `folder` (the whole sandbox `/` is mounted, so the mount matches the agent's root).
  public static func mountTarget(agentURL: String, folder: String) throws -> (
    url: String, arguments: [String]
  ) {
    let tokenFile = folder + "/vercel-token"
    try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
    return (
      "vercel://\(sandboxName)",
      ["--api-url", agentURL + "/api", "--token-file", tokenFile, "--team", "team_test"]
    )
  }
}
