import Foundation
import Logging

/// The wire protocol the agent speaks over the served folder.
public enum AgentProtocol: String, Sendable, CaseIterable {
  /// E2B's envd (Connect RPCs and `/files`), plus the agent extension unless `envdCompat`.
  case envd
  /// Vercel Sandbox's REST API (`/v2/sandboxes/...`), see `Vercel/VercelRoutes.swift`.
  case vercel
  /// LangSmith's sandbox API (control-plane lookup, dataplane files and commands), see
  /// `LangSmith/LangSmithRoutes.swift`.
  case langsmith
  /// CoreWeave's sandbox gRPC API (`coreweave.sandbox.v1.SandboxService`), see
  /// `CoreWeave/CoreWeaveService.swift`.
  case coreweave
}

/// Everything the agent needs to start, as parsed from the command line.
public struct AgentConfiguration: Sendable {
  /// Host to bind, e.g. `127.0.0.1`.
  public var host: String
  /// Port to bind; 0 picks a free one.
  public var port: Int
  /// Folder whose contents the protocol's absolute paths address.
  public var root: String
  /// When set, every request except the envd-excluded routes must carry it in `X-Access-Token`.
  /// Trimmed; blank is no token (`SANDBOX_AGENT_TOKEN=" "` must not open a public listen).
  public var accessToken: String? {
    get { storedToken }
    set { storedToken = Self.usableToken(newValue) }
  }
  private var storedToken: String?
  /// Allows a non-loopback listen address without a token.
  public var insecure: Bool
  public var logLevel: Logger.Level
  /// Behave as stock envd: the agent extension (`sandboxagent.v1.Extension`) is switched off.
  public var envdCompat: Bool
  public var wireProtocol: AgentProtocol
  /// The sandbox id a `coreweave` agent answers to; any other is not found.
  public var sandboxID: String
  /// The largest file a `coreweave` agent's `ReadFile`/`WriteFile` move in one call.
  public var coreWeaveFileCap: Int
  /// HTTPS (gRPC over TLS for `coreweave`) with this certificate; nil: plain HTTP.
  public var tls: AgentTLS?

  /// How long a client has to send a request head: from the connection's start, and from the
  /// first byte of each later request.
  public var requestHeadTimeout: Duration = .seconds(10)
  /// Open connections at most; more wait in the listen backlog until one closes.
  public var maxConnections: Int = 512
  /// Directory watchers (streaming and polling) one connection may hold, and all together.
  public var watchersPerConnection = 16
  public var maxWatchers = WatcherQuota.defaultTotal

  public init(
    host: String = "127.0.0.1", port: Int = 49983, root: String = "/", accessToken: String? = nil,
    insecure: Bool = false, logLevel: Logger.Level = .info, envdCompat: Bool = false,
    wireProtocol: AgentProtocol = .envd, sandboxID: String = "local",
    coreWeaveFileCap: Int = 32 << 20, tls: AgentTLS? = nil
  ) {
    self.tls = tls
    self.sandboxID = sandboxID
    self.coreWeaveFileCap = coreWeaveFileCap
    self.wireProtocol = wireProtocol
    self.host = host
    self.port = port
    self.root = root
    self.storedToken = Self.usableToken(accessToken)
    self.insecure = insecure
    self.logLevel = logLevel
    self.envdCompat = envdCompat
  }

  /// `token` without surrounding white space, or nil when nothing is left.
  public static func usableToken(_ token: String?) -> String? {
    guard let trimmed = token?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty
    else { return nil }
    return trimmed
  }

  /// Loopback addresses may be served without a token; anything else needs one or `--insecure`.
  public var isLoopback: Bool {
    host == "localhost" || host == "::1" || host.hasPrefix("127.")
  }

  /// Why this configuration must not start, or nil when it may.
  public var startupRefusal: String? {
    if !isLoopback && accessToken == nil && !insecure {
      return
        "refusing to listen on non-loopback address \(host) without a token (use --token-file, SANDBOX_AGENT_TOKEN, or --insecure)"
    }
    return nil
  }
}
