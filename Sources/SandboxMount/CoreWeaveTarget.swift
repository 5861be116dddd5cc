import Backend
import CoreWeaveBackend
import Foundation

/// `cwsandbox://SANDBOX_ID`: the sandbox's ID, and the API key and base URL from the options
/// or, as CoreWeave's SDK reads them, the environment.
enum CoreWeaveTarget {
  /// The ID of `cwsandbox://ID`, or nil for any other URL.
  static func sandboxID(_ url: String) throws -> String? {
    try Preflight.name(of: url, scheme: "cwsandbox", form: "cwsandbox://SANDBOX_ID")
  }

  /// The key from `--token-file`, else `CWSANDBOX_API_KEY`, else none; the base URL from
  /// `--api-url`, else `CWSANDBOX_BASE_URL`, else CoreWeave's.
  static func configuration(
    id: String, command: MountCommand, environment: [String: String]
  ) throws -> CoreWeaveConfiguration {
    var configuration = CoreWeaveConfiguration.fromEnvironment(
      sandboxID: id, apiKey: try Preflight.tokenFile(command.tokenFile),
      baseURL: command.apiURL, environment: environment)
    do {
      _ = try CoreWeaveConfiguration.endpoint(of: configuration.baseURL)
    } catch let error as RemoteError {
      throw MountFailure(error.message)
    }
    configuration.remoteRoot = command.root
    if configuration.apiKey != nil {
      try Preflight.refuseCleartextToken(to: configuration.baseURL, insecure: command.insecure)
    }
    configuration.caFile = command.caFile
    configuration.connectTimeout = command.connectTimeout
    configuration.ioTimeout = command.ioTimeout
    return configuration
  }
}

extension BackendFactory {
  /// A CoreWeave sandbox by ID, over gRPC (`--api-url` for another endpoint, or
  /// `sandbox-agent --protocol coreweave`).
  static let coreWeave = BackendFactory(
    forms: ["cwsandbox://SANDBOX_ID"], checkURL: { _ = try CoreWeaveTarget.sandboxID($0) }
  ) { command, _ in
    guard let id = try CoreWeaveTarget.sandboxID(command.url) else {
      throw MountFailure("invalid URL '\(command.url)': expected cwsandbox://SANDBOX_ID")
    }
    guard command.apiKeyFile == nil, command.sandboxTimeout == nil, command.user == nil,
      command.team == nil, command.project == nil, !command.sudo
    else {
      throw MountFailure(
        "--api-key-file, --sandbox-timeout, --user, --team, --project and --sudo are not for cwsandbox:// (the key comes from CWSANDBOX_API_KEY or --token-file)"
      )
    }
    let configuration = try CoreWeaveTarget.configuration(
      id: id, command: command, environment: ProcessInfo.processInfo.environment)
    let backend: CoreWeaveBackend
    do {
      backend = try await CoreWeaveBackend.connect(configuration: configuration)
    } catch let error as RemoteError {
      throw MountFailure("cannot use \(command.url): \(error.message)")
    }
    return OpenedBackend(
      filesystem: backend, description: "\(command.url) (\(configuration.baseURL))",
      lightRequestExecutor: nil, shutdown: { await backend.shutdownWithoutBlocking() },
      journalKey: command.url + "|" + configuration.baseURL)
  }
}
