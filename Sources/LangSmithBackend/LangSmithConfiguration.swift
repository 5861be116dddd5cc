import Backend
import Foundation

/// How to reach one LangSmith sandbox (or `sandbox-agent --protocol langsmith`) and how patient
/// to be.
public struct LangSmithConfiguration: Sendable {
  /// LangSmith's endpoint as `LANGSMITH_ENDPOINT` gives it; the control plane is
  /// `{endpoint without /api or /api/v1}/api/v2/sandboxes`, as the SDK derives it.
  public var endpoint: String = LangSmithConfiguration.defaultEndpoint
  /// The box's name, as `langsmith://NAME` gives it.
  public var boxName: String
  /// Sent as `X-Api-Key`.
  public var apiKey: String
  /// The box folder mounted: box paths are `remoteRoot` + the mount path. Absolute.
  public var remoteRoot: String = "/"
  /// PEM file of the CAs trusted for https instead of the system's store.
  public var caFile: String?
  public var connectTimeout: Double = 10
  /// A transfer slower than 1 byte/s for this many seconds fails (EIO).
  public var lowSpeedTime: Double = 30
  /// Whole-request deadline of control calls and of commands without their own timeout.
  public var requestTimeout: Double = 60
  /// Waits before the retries of a failed request: three, as the SDK's (which waits 1, 2, 4 s).
  public var retryDelays: [Double] = [0.5, 1, 2]
  /// A 429 asking for a longer wait than this is not retried.
  public var longestRetryAfter: Double = 30
  /// Times a command's stream is resumed by offset after it broke off.
  public var streamResumes = 3
  /// Commands over the WebSocket (the SDK's default) or over SSE.
  public var commandStream: CommandStream = .webSocket

  public enum CommandStream: String, Sendable {
    /// `/execute/ws`: text output, any stdin.
    case webSocket = "WebSocket"
    /// `/execute/stream/start|resume`: binary-safe output, stdin only in the command line.
    case serverSentEvents = "SSE"
  }

  public static let defaultEndpoint = "https://api.smith.langchain.com"

  public init(boxName: String, apiKey: String) {
    self.boxName = boxName
    self.apiKey = apiKey
  }

  /// The control plane's base, `…/api/v2/sandboxes`, of an endpoint (the SDK's
  /// `_get_default_api_endpoint`).
  public static func controlPlane(_ endpoint: String) -> String {
    var base = endpoint.trimmingCharacters(in: .whitespaces)
    while base.hasSuffix("/") { base.removeLast() }
    for suffix in ["/api/v1", "/api"] where base.hasSuffix(suffix) {
      base.removeLast(suffix.count)
      break
    }
    return base + "/api/v2/sandboxes"
  }

  /// The key and endpoint as the SDK reads them: `LANGSMITH_API_KEY` (else `LANGCHAIN_API_KEY`),
  /// `LANGSMITH_ENDPOINT` (else `LANGCHAIN_ENDPOINT`, else LangSmith's). Throws EINVAL without
  /// a key.
  public static func fromEnvironment(
    boxName: String, apiKey given: String?, endpoint: String?, environment: [String: String]
  ) throws -> LangSmithConfiguration {
    func value(_ name: String) -> String? {
      for namespace in ["LANGSMITH_", "LANGCHAIN_"] {
        if let text = environment[namespace + name]?.trimmingCharacters(
          in: .whitespacesAndNewlines),
          !text.isEmpty
        {
          return text
        }
      }
      return nil
    }
    guard let key = given ?? value("API_KEY") else {
      throw RemoteError(
        errno: EINVAL, "langsmith:// needs an API key: set LANGSMITH_API_KEY or pass --token-file")
    }
    var configuration = LangSmithConfiguration(boxName: boxName, apiKey: key)
    configuration.endpoint = endpoint ?? value("ENDPOINT") ?? defaultEndpoint
    if sandboxSSEExec(environment["LANGSMITH_EXPERIMENTAL_FEATURES"] ?? "") {
      configuration.commandStream = .serverSentEvents
    }
    return configuration
  }

  /// Whether the SDK's feature list (`LANGSMITH_EXPERIMENTAL_FEATURES`, comma-separated, `no`
  /// turning one off, `-` read as `_`) turns `sandbox_sse_exec` on; the last word wins.
  static func sandboxSSEExec(_ features: String) -> Bool {
    var on = false
    for token in features.split(separator: ",") {
      let name = token.trimmingCharacters(in: .whitespaces).lowercased()
        .replacingOccurrences(of: "-", with: "_")
      if name == "sandbox_sse_exec" { on = true }
      if name == "nosandbox_sse_exec" { on = false }
    }
    return on
  }
}
