import Backend
import Foundation
import LangSmithBackend

/// `langsmith://BOX_NAME`: the box's name, and the API key and endpoint from the options or,
/// as LangSmith's SDK reads them, the environment.
enum LangSmithTarget {
  /// The box name of `langsmith://NAME`, or nil for any other URL.
  static func boxName(_ url: String) throws -> String? {
    try Preflight.name(of: url, scheme: "langsmith", form: "langsmith://BOX_NAME")
  }

  /// The key from `--token-file`, else `LANGSMITH_API_KEY`; the endpoint from `--api-url`, else
  /// `LANGSMITH_ENDPOINT`, else LangSmith's.
  static func configuration(
    name: String, command: MountCommand, environment: [String: String]
  ) throws -> LangSmithConfiguration {
    let key = try Preflight.tokenFile(command.tokenFile)
    var configuration: LangSmithConfiguration
    do {
      configuration = try LangSmithConfiguration.fromEnvironment(
        boxName: name, apiKey: key, endpoint: command.apiURL, environment: environment)
    } catch let error as RemoteError {
      throw MountFailure(error.message)
    }
    configuration.remoteRoot = command.root
    try Preflight.refuseCleartextToken(to: configuration.endpoint, insecure: command.insecure)
    // The WebSocket client always names the host for TLS (SNI), and NIO refuses an address
    // there: over https to an address, commands go over SSE (curl checks the address).
    if let url = URL(string: configuration.endpoint), url.scheme?.lowercased() == "https",
      let host = url.host, Preflight.isAddress(host)
    {
      configuration.commandStream = .serverSentEvents
    }
    configuration.caFile = command.caFile
    configuration.connectTimeout = command.connectTimeout
    configuration.lowSpeedTime = command.ioTimeout
    return configuration
  }
}

extension BackendFactory {
  /// A LangSmith sandbox, found by name through the control plane (`--api-url` for another
  /// endpoint, or `sandbox-agent --protocol langsmith`).
  static let langSmith = BackendFactory(
    forms: ["langsmith://BOX_NAME"], checkURL: { _ = try LangSmithTarget.boxName($0) }
  ) { command, _ in
    guard let name = try LangSmithTarget.boxName(command.url) else {
      throw MountFailure("invalid URL '\(command.url)': expected langsmith://BOX_NAME")
    }
    guard command.apiKeyFile == nil, command.sandboxTimeout == nil, command.user == nil,
      command.team == nil, command.project == nil, !command.sudo
    else {
      throw MountFailure(
        "--api-key-file, --sandbox-timeout, --user, --team, --project and --sudo are not for langsmith:// (the key comes from LANGSMITH_API_KEY or --token-file)"
      )
    }
    let configuration = try LangSmithTarget.configuration(
      name: name, command: command, environment: ProcessInfo.processInfo.environment)
    let backend: LangSmithBackend
    do {
      backend = try await LangSmithBackend.connect(configuration: configuration)
    } catch let error as RemoteError {
      throw MountFailure("cannot use \(command.url): \(error.message)")
    }
    return OpenedBackend(
      filesystem: backend, description: command.url,
      lightRequestExecutor: backend.transferThread,
      shutdown: { await backend.shutdownWithoutBlocking() },
      journalKey: command.url + "|" + LangSmithConfiguration.controlPlane(configuration.endpoint))
  }
}
