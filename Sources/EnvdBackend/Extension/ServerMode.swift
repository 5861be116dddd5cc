import Backend
import HTTPTransport
import Logging

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What the server offers beyond envd: the agent extension, or nothing (stock envd, or
/// `sandbox-agent --envd-compat`), in which case metadata operations run as processes.
enum ServerMode: Sendable, Equatable {
  case agentExtension(ExtensionOffer)
  case stock

  var description: String {
    switch self {
    case .agentExtension(let offer): "sandbox-agent extension v\(offer.version)"
    case .stock: "stock envd (process fallbacks)"
    }
  }
}

/// What the agent's extension offers, as its `Capabilities` told once at connect.
struct ExtensionOffer: Sendable, Equatable {
  var version: Int
  var methods: Set<String>
  /// The offset-write and replace route; nil: uploads go through envd's `/files`.
  var writeRoute: String?
  /// The agent makes changes under the credentials a request names (it runs as root).
  var actsAsCaller: Bool

  func offers(_ method: String) -> Bool { methods.contains(method) }
}

extension EnvdConnection {
  /// Fallback rule of docs/agent-extension.md §2: 404 means no extension; 401 is an auth
  /// problem; anything else unexpected is treated as no extension, and logged.
  func discoverMode() async throws -> ServerMode {
    let context = "extension discovery"
    let response = try await client.rpcResponse(
      "Capabilities", ExtensionEmpty(), service: EnvdExtensionBackend.extensionService)
    if let failure = client.transportError(response, context: context) { throw failure }
    switch response.status {
    case 200:
      guard let answer = try? decodeJSON(ExtensionCapabilities.self, response.body) else {
        logger.warning("\(context): undecodable Capabilities answer; using envd's primitives")
        return .stock
      }
      return .agentExtension(
        ExtensionOffer(
          version: answer.version ?? 1, methods: Set(answer.methods ?? []),
          writeRoute: answer.write, actsAsCaller: answer.actsAsCaller ?? false))
    case 404:
      return .stock
    case 401:
      throw ExtensionErrno.remoteError(
        status: response.status, body: response.body, context: context)
    default:
      logger.warning(
        "\(context): HTTP \(response.status) from Capabilities; using envd's primitives")
      return .stock
    }
  }

}

extension EnvdExtensionBackend {
  static let extensionService = "sandboxagent.v1.Extension"

  /// The methods that change something. Reads go as the agent: the kernel already checked the
  /// caller's access (default_permissions), and the listings write-back takes for itself must
  /// not fail for a caller who may only search a folder.
  static let changeMethods: Set<String> = [
    "Unlink", "Rmdir", "Mkdir", "Mknod", "Create", "Symlink", "Link", "Rename", "Setattr", "Batch",
  ]

  /// The caller a change is made as: `CallerIdentity.current`, when the agent honours it.
  func callerToSend() -> CallerIdentity? {
    offer.actsAsCaller ? CallerIdentity.current : nil
  }

  /// One extension call: the decoded answer, or the errno from the message's prefix.
  func extensionCall<Response: Decodable>(
    _ method: String, _ message: some Encodable, as: Response.Type, context: String
  ) async throws -> Response {
    let response: HTTPResponse
    if let caller = callerToSend(), Self.changeMethods.contains(method),
      let flat = message as? any JSONObjectEncodable
    {
      response = try await client.rpcResponse(
        method, ExtensionWithCaller(message: flat, caller: caller),
        service: Self.extensionService)
    } else {
      response = try await client.rpcResponse(method, message, service: Self.extensionService)
    }
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.status == 200 else {
      throw ExtensionErrno.remoteError(
        status: response.status, body: response.body, context: context)
    }
    if let fast = Response.self as? any FastJSONDecodable.Type,
      let answer = fast.decodeFast(response.body) as? Response
    {
      return answer
    }
    do {
      return try decodeJSON(Response.self, response.body)
    } catch {
      throw RemoteError(errno: EIO, "\(context): undecodable answer from the agent: \(error)")
    }
  }

  func extensionAttributes(_ method: String, _ message: some Encodable, context: String)
    async throws -> RemoteAttributes
  {
    try await extensionCall(method, message, as: ExtensionAttrResponse.self, context: context).attr
      .attributes
  }
}
