import Backend
import EnvdBackend
import Foundation

/// A connected and checked backend, with what the mount needs beyond `RemoteFilesystem`.
struct OpenedBackend {
  var filesystem: any RemoteFilesystem
  /// Where the URL led, for messages: the URL, and the server behind it when that differs.
  var description: String
  /// Where FUSE's light requests run (the backend's transfer thread); nil: the pool.
  var lightRequestExecutor: (any TaskExecutor)?
  /// Stops the backend's threads without blocking a pool thread.
  var shutdown: @Sendable () async -> Void
  /// What names the sandbox for the write-back journal's folder when the URL alone does not
  /// (`vercel://NAME` of another API, team or project); nil: the URL.
  var journalKey: String? = nil
  /// Reports changes made inside the sandbox, when the backend can (`RemoteCapabilities.watch`).
  var watcher: (any RemoteWatching)? = nil
}

/// One kind of backend: the URL forms it serves, a check of the URL made before anything else,
/// and how to connect.
struct BackendFactory: Sendable {
  /// `scheme://WHAT`, for the error that lists them.
  var forms: [String]
  /// Throws a one-line MountFailure for a URL of this scheme that cannot work.
  var checkURL: @Sendable (String) throws -> Void
  var open: @Sendable (_ command: MountCommand, _ readOnly: Bool) async throws -> OpenedBackend

  var schemes: [String] { forms.map { String($0.prefix { $0 != ":" }) } }
}

/// Backends by URL scheme. A new vendor (vercel://, langsmith://, cwsandbox://) adds one entry.
enum BackendRegistry {
  static let factories: [BackendFactory] = [.envd, .e2b, .vercel, .langSmith, .coreWeave]

  /// The factory for `url`'s scheme, after its check of the URL.
  static func factory(for url: String) throws -> BackendFactory {
    let scheme = url.range(of: "://").map { url[..<$0.lowerBound].lowercased() }
    guard let scheme, let factory = factories.first(where: { $0.schemes.contains(scheme) })
    else {
      let known = factories.flatMap(\.forms).joined(separator: ", ")
      throw MountFailure("invalid URL '\(url)': unknown scheme; known: \(known)")
    }
    try factory.checkURL(url)
    return factory
  }
}

extension BackendFactory {
  /// envd, or sandbox-agent (envd's protocol plus its extension), at the URL as given.
  static let envd = BackendFactory(
    forms: ["http://HOST:PORT", "https://HOST"], checkURL: Preflight.checkURL
  ) { command, _ in
    guard command.apiKeyFile == nil, command.sandboxTimeout == nil else {
      throw MountFailure("--api-key-file and --sandbox-timeout are for e2b://SANDBOX_ID URLs")
    }
    try command.refuseVercelOptions()
    let target = EnvdTarget(
      url: command.url, accessToken: try Preflight.token(file: command.tokenFile),
      user: command.user)
    if target.accessToken != nil {
      try Preflight.refuseCleartextToken(to: target.url, insecure: command.insecure)
    }
    return try await openEnvd(target, for: command)
  }

  /// An E2B sandbox's envd, found and resumed through E2B's API.
  static let e2b = BackendFactory(
    forms: ["e2b://SANDBOX_ID"], checkURL: { _ = try EnvdTarget.e2bSandboxID($0) }
  ) { command, readOnly in
    guard let sandboxID = try EnvdTarget.e2bSandboxID(command.url) else {
      throw MountFailure("invalid URL '\(command.url)': expected e2b://SANDBOX_ID")
    }
    guard command.tokenFile == nil else {
      throw MountFailure("--token-file is for http(s) URLs; e2b:// gets the token from E2B's API")
    }
    try command.refuseVercelOptions()
    let environment = try E2BEnvironment(
      ProcessInfo.processInfo.environment, apiKeyFile: command.apiKeyFile)
    if !environment.debug && environment.apiKey != nil {
      try Preflight.refuseCleartextToken(to: environment.apiURL, insecure: command.insecure)
    }
    let target = try await EnvdTarget.e2b(
      sandboxID: sandboxID, environment: environment, user: command.user, readOnly: readOnly,
      caFile: command.caFile, sandboxTimeout: command.sandboxTimeout,
      connectTimeout: command.connectTimeout, stallTimeout: command.ioTimeout)
    if target.accessToken != nil {
      try Preflight.refuseCleartextToken(to: target.url, insecure: command.insecure)
    }
    return try await openEnvd(target, for: command)
  }

  private static func openEnvd(_ target: EnvdTarget, for command: MountCommand) async throws
    -> OpenedBackend
  {
    var remote = EnvdConfiguration(baseURL: target.url)
    remote.accessToken = target.accessToken
    remote.user = target.user
    remote.extraHeaders = target.extraHeaders
    remote.caFile = command.caFile
    remote.remoteRoot = command.root
    remote.connectTimeout = command.connectTimeout
    remote.lowSpeedTime = command.ioTimeout
    let shown = target.url == command.url ? target.url : "\(command.url) (\(target.url))"
    let backend: any EnvdRemote
    do {
      backend = try await EnvdBackend.connect(configuration: remote)
    } catch let error as RemoteError {
      throw MountFailure("cannot use \(shown): \(error.message)")
    }
    return OpenedBackend(
      filesystem: backend, description: shown, lightRequestExecutor: backend.transferThread,
      shutdown: { await backend.shutdownWithoutBlocking() }, watcher: backend)
  }
}
