import Backend
import Foundation

/// How to reach one CoreWeave sandbox (or `sandbox-agent --protocol coreweave`) and how patient
/// to be.
public struct CoreWeaveConfiguration: Sendable {
  /// The API's base URL as `CWSANDBOX_BASE_URL` gives it: `https://HOST[:PORT]` (TLS) or
  /// `http://HOST:PORT` (plaintext HTTP/2, h2c). No path, as the SDK's `parse_grpc_target`.
  public var baseURL: String = CoreWeaveConfiguration.defaultBaseURL
  /// The sandbox, as `cwsandbox://SANDBOX_ID` gives it.
  public var sandboxID: String
  /// Sent as `authorization: Bearer KEY`; nil sends none (a local server needs none).
  public var apiKey: String?
  /// The sandbox folder mounted: sandbox paths are `remoteRoot` + the mount path. Absolute.
  public var remoteRoot: String = "/"
  /// PEM file of the CAs trusted for https instead of the system's store.
  public var caFile: String?
  public var connectTimeout: Double = 10
  /// A stream that moves no byte for this many seconds is cancelled (EIO).
  public var ioTimeout: Double = 30
  /// Deadline of unary calls and of commands without their own timeout.
  public var requestTimeout: Double = 60
  /// Slowest rate a transfer's deadline allows for, in bytes per second, beyond
  /// `requestTimeout` (the stall check catches a stream that stops).
  public var slowestTransferRate: Double = 1_048_576
  /// Waits before the retries of a call that failed UNAVAILABLE or RESOURCE_EXHAUSTED.
  public var retryDelays: [Double] = [0.25, 0.5, 1, 2]
  /// The largest file one `ReadFile`/`WriteFile` moves (the SDK's
  /// `DEFAULT_FILE_OPERATION_CAP_BYTES`); a server that reports a smaller `max_size_bytes`
  /// lowers it for this mount.
  public var fileCap: Int = 32 << 20

  public static let defaultBaseURL = "https://api.cwsandbox.com"

  public init(sandboxID: String, apiKey: String? = nil) {
    self.sandboxID = sandboxID
    self.apiKey = apiKey
  }

  /// The key and base URL as the SDK reads them: `CWSANDBOX_API_KEY` and `CWSANDBOX_BASE_URL`
  /// (else CoreWeave's). A key given, or a base URL given, wins over the environment.
  public static func fromEnvironment(
    sandboxID: String, apiKey given: String?, baseURL: String?, environment: [String: String]
  ) -> CoreWeaveConfiguration {
    func value(_ name: String) -> String? {
      guard let text = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines),
        !text.isEmpty
      else { return nil }
      return text
    }
    var configuration = CoreWeaveConfiguration(
      sandboxID: sandboxID, apiKey: given ?? value("CWSANDBOX_API_KEY"))
    configuration.baseURL = baseURL ?? value("CWSANDBOX_BASE_URL") ?? defaultBaseURL
    return configuration
  }

  /// Where the base URL leads.
  public struct Endpoint: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var tls: Bool
  }

  /// `https://HOST[:PORT]` (443 by default) or `http://HOST[:PORT]` (80); a path, query or
  /// user part is EINVAL.
  public static func endpoint(of baseURL: String) throws -> Endpoint {
    let text = baseURL.trimmingCharacters(in: .whitespaces)
    let invalid = RemoteError(
      errno: EINVAL,
      "invalid CoreWeave base URL '\(baseURL)': expected https://HOST[:PORT] or http://HOST:PORT")
    guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
      scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty,
      url.query == nil, url.user == nil, url.path.isEmpty || url.path == "/"
    else { throw invalid }
    let tls = scheme == "https"
    let bare =
      host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    return Endpoint(host: bare, port: url.port ?? (tls ? 443 : 80), tls: tls)
  }
}
