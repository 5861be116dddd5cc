import Foundation

/// `sandbox-agent --protocol langsmith` with an API key, and the `langsmith://` mount of it.
public enum LangSmithAgent {
  public static let apiKey = "langsmith-test-key"
  public static let boxName = "mount-test"
  public static let arguments = ["--protocol", "langsmith"]
  public static let environment = ["SANDBOX_AGENT_TOKEN": apiKey]

  /// `langsmith://NAME` with `--api-url` of the agent at `agentURL` and a key file written into
  /// `folder` (the whole box `/` is mounted, so the mount matches the agent's root).
  public static func mountTarget(agentURL: String, folder: String) throws -> (
    url: String, arguments: [String]
  ) {
    let keyFile = folder + "/langsmith-key"
    try apiKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
    return ("langsmith://\(boxName)", ["--api-url", agentURL, "--token-file", keyFile])
  }
}
