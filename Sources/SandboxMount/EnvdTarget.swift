import Backend
import EnvdBackend
import Foundation

/// The envd a mount talks to, and how: from `http(s)://…` as given, or from `e2b://SANDBOX_ID`
/// through E2B's API.
struct EnvdTarget {
  var url: String
  var accessToken: String?
  /// nil: envd's default user (the template's).
  var user: String?
  var extraHeaders: [String] = []
  /// The version E2B reported; nil for a plain URL.
  var envdVersion: EnvdVersion?
}

/// How the E2B Python SDK configures itself (`connection_config.py`), read from the environment.
struct E2BEnvironment {
  static let envdPort = 49983

  var apiKey: String?
  var domain: String
  var debug: Bool
  var apiURL: String
  var sandboxURL: String?

  /// `--api-key-file` wins over `E2B_API_KEY`; empty values count as unset, as the SDK's `or` does.
  init(_ environment: [String: String], apiKeyFile: String?) throws {
    func value(_ name: String) -> String? {
      environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
    domain = value("E2B_DOMAIN") ?? "e2b.app"
    debug = value("E2B_DEBUG")?.lowercased() == "true"
    apiURL = value("E2B_API_URL") ?? (debug ? "http://localhost:3000" : "https://api.\(domain)")
    sandboxURL = value("E2B_SANDBOX_URL")
    if let apiKeyFile {
      guard let text = try? String(contentsOfFile: apiKeyFile, encoding: .utf8) else {
        throw MountFailure("cannot read the API key file \(apiKeyFile)")
      }
      apiKey = text.trimmingCharacters(in: .whitespacesAndNewlines)
      if apiKey!.isEmpty { throw MountFailure("the API key file \(apiKeyFile) is empty") }
    } else {
      apiKey = value("E2B_API_KEY")
    }
  }

  /// The SDK's `get_sandbox_direct_url`: the per-sandbox host, which serves RPCs and `/files`
  /// alike (the shared `sandbox.DOMAIN` host routes by the same headers we send anyway).
  func envdURL(sandboxID: String, sandboxDomain: String?) -> String {
    if let sandboxURL { return sandboxURL }
    if debug { return "http://localhost:\(Self.envdPort)" }
    return "https://\(Self.envdPort)-\(sandboxID).\(sandboxDomain ?? domain)"
  }
}

extension EnvdTarget {
  /// `e2b://ID`'s sandbox ID, or nil for any other URL.
  static func e2bSandboxID(_ url: String) throws -> String? {
    guard url.lowercased().hasPrefix("e2b://") else { return nil }
    var id = Substring(url.dropFirst("e2b://".count))
    while id.hasSuffix("/") { id = id.dropLast() }
    guard !id.isEmpty,
      id.unicodeScalars.allSatisfy({
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
          || $0 == "-" || $0 == "_"
      })
    else {
      throw MountFailure(
        "invalid URL '\(url)': expected e2b://SANDBOX_ID (letters, digits, - or _)")
    }
    return String(id)
  }

  /// Connects (and so resumes) the sandbox through E2B's API, as `Sandbox.connect(id)` does; with
  /// `E2B_DEBUG=true` there is no API call and no token, as in the SDK.
  static func e2b(
    sandboxID: String, environment: E2BEnvironment, user: String?, readOnly: Bool,
    caFile: String?, sandboxTimeout: Int?, connectTimeout: Double, stallTimeout: Double
  ) async throws -> EnvdTarget {
    var sandbox = E2BSandbox(
      sandboxID: sandboxID, envdVersion: "99.99.99", envdAccessToken: nil, domain: nil)
    if !environment.debug {
      guard let apiKey = environment.apiKey else {
        throw MountFailure(
          "e2b:// needs an E2B API key: set E2B_API_KEY or pass --api-key-file (keys: https://e2b.dev/dashboard?tab=keys)"
        )
      }
      var api = E2BControlPlane(apiURL: environment.apiURL, apiKey: apiKey)
      api.caFile = caFile
      api.connectTimeout = connectTimeout
      api.stallTimeout = stallTimeout
      do {
        sandbox = try await api.connect(sandboxID: sandboxID, timeout: sandboxTimeout)
      } catch let error as RemoteError {
        throw MountFailure(error.message)
      }
    }
    guard let version = EnvdVersion(sandbox.envdVersion) else {
      throw MountFailure(
        "sandbox \(sandboxID) reports an envd version E2B's API should not send: '\(sandbox.envdVersion)'"
      )
    }
    let needed = readOnly ? EnvdVersion.neededForReading : EnvdVersion.neededForWriting
    if version < needed {
      let hint =
        version < EnvdVersion.neededForReading
        ? "" : " (\(EnvdVersion.neededForReading) read-only: --read-only)"
      throw MountFailure(
        "sandbox \(sandboxID) runs envd \(version), too old: sandbox-mount needs envd \(needed) or later\(hint); rebuild its template on a current E2B base image"
      )
    }
    let id = sandbox.sandboxID
    return EnvdTarget(
      url: environment.envdURL(sandboxID: id, sandboxDomain: sandbox.domain),
      accessToken: sandbox.envdAccessToken,
      // As the SDK: envd before 0.4.0 has no default user, so it is E2B's `user`.
      user: user ?? (version < EnvdVersion.defaultsToTemplateUser ? "user" : nil),
      extraHeaders: ["E2b-Sandbox-Id: \(id)", "E2b-Sandbox-Port: \(E2BEnvironment.envdPort)"],
      envdVersion: version)
  }
}
