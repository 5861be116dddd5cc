import Backend
import Foundation
import VercelBackend

/// `vercel://SANDBOX_NAME`: the sandbox's name, and the team, project and token from the
/// options or, as Vercel's SDK reads them, the environment.
enum VercelTarget {
  /// The sandbox name of `vercel://NAME`, or nil for any other URL.
  static func sandboxName(_ url: String) throws -> String? {
    try Preflight.name(of: url, scheme: "vercel", form: "vercel://SANDBOX_NAME")
  }

  /// The configuration of a mount of `name`: the token from `--token-file`, else as Vercel's
  /// SDK finds it (`VercelCredentials`), as are the team and project without `--team` and
  /// `--project`.
  static func configuration(
    name: String, command: MountCommand, environment: [String: String]
  ) throws -> VercelConfiguration {
    let token = try Preflight.tokenFile(command.tokenFile)
    let credentials: VercelCredentials
    do {
      credentials = try VercelCredentials.resolve(
        token: token, team: command.team, project: command.project, environment: environment)
    } catch let error as RemoteError {
      throw MountFailure(error.message)
    }
    var configuration = VercelConfiguration(sandboxName: name, token: credentials.token)
    if let apiURL = command.apiURL { configuration.apiURL = apiURL }
    configuration.teamID = credentials.teamID
    configuration.projectID = credentials.projectID
    configuration.remoteRoot = command.root
    configuration.sudo = command.sudo
    try Preflight.refuseCleartextToken(to: configuration.apiURL, insecure: command.insecure)
    configuration.caFile = command.caFile
    configuration.connectTimeout = command.connectTimeout
    configuration.lowSpeedTime = command.ioTimeout
    return configuration
  }
}

extension BackendFactory {
  /// A Vercel sandbox, found by name through Vercel's API (`--api-url` for a self-hosted one
  /// or `sandbox-agent --protocol vercel`).
  static let vercel = BackendFactory(
    forms: ["vercel://SANDBOX_NAME"], checkURL: { _ = try VercelTarget.sandboxName($0) }
  ) { command, _ in
    guard let name = try VercelTarget.sandboxName(command.url) else {
      throw MountFailure("invalid URL '\(command.url)': expected vercel://SANDBOX_NAME")
    }
    guard command.apiKeyFile == nil, command.sandboxTimeout == nil, command.user == nil else {
      throw MountFailure(
        "--api-key-file, --sandbox-timeout and --user are not for vercel:// (commands run as the sandbox's user; --sudo runs them as root)"
      )
    }
    let configuration = try VercelTarget.configuration(
      name: name, command: command, environment: ProcessInfo.processInfo.environment)
    let backend: VercelBackend
    do {
      backend = try await VercelBackend.connect(configuration: configuration)
    } catch let error as RemoteError {
      throw MountFailure("cannot use \(command.url): \(error.message)")
    }
    // A sandbox's name is unique within its project only.
    let scope = [configuration.apiURL, configuration.teamID ?? "", configuration.projectID ?? ""]
    return OpenedBackend(
      filesystem: backend, description: command.url,
      lightRequestExecutor: backend.transferThread,
      shutdown: { await backend.shutdownWithoutBlocking() },
      journalKey: command.url + "|" + scope.joined(separator: "|"))
  }
}
