import Backend

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

extension EnvdConnection {
  /// Checks, before mounting, that the server answers `/health`, that the token and user are
  /// accepted and that the remote root is a directory. Throws a RemoteError with a one-line
  /// message meant for a person.
  public func verifyConnection() async throws {
    let base = client.baseURL
    // A bare 204 should come back at once: don't let a hung server hold the mount for a minute.
    let configuration = client.configuration
    let health = try await client.get(
      route: "/health",
      deadline: min(configuration.requestTimeout, configuration.connectTimeout + 5))
    if let failure = client.transportError(health, context: "") {
      throw RemoteError(errno: failure.errno, client.describeFailure(health))
    }
    guard health.isSuccessStatus else {
      let detail = EnvdErrorBody(health.body).message.split(whereSeparator: \.isNewline).first ?? ""
      throw RemoteError(
        errno: EIO,
        "\(base)/health answered HTTP \(health.status)"
          + (detail.isEmpty ? "" : ": \(detail.prefix(200))"))
    }

    let root = client.remoteRoot
    let response = try await client.rpcResponse("Stat", PathRequest(path: root))
    if let failure = client.transportError(response, context: "") {
      throw RemoteError(errno: failure.errno, client.describeFailure(response))
    }
    if response.status != 200 {
      throw verificationError(
        status: response.status, body: EnvdErrorBody(response.body), root: root)
    }
    let entry = try? decodeJSON(EntryResponse.self, response.body).entry
    guard let entry else {
      throw RemoteError(errno: EIO, "\(base) does not answer like envd (undecodable Stat answer)")
    }
    guard entry.attributes.type == .directory || entry.leadsToDirectory else {
      throw RemoteError(errno: ENOTDIR, "the remote root '\(root)' is not a directory")
    }
  }

  private func verificationError(status: Int, body: EnvdErrorBody, root: String) -> RemoteError {
    let configuration = client.configuration
    let number = EnvdErrorMapping.errno(status: status, body: body)
    switch body {
    case .connect("unauthenticated", let message):
      // Connect's unauthenticated is about the user (Basic auth), not the token.
      return RemoteError(
        errno: EACCES, "user '\(configuration.user ?? "")' rejected: \(message)", kind: .failure)
    case .http(_, let message) where status == 401, .opaque(let message) where status == 401:
      if configuration.accessToken == nil {
        return RemoteError(
          errno: EACCES, "the server requires an access token: \(message)", kind: .failure)
      }
      return RemoteError(errno: EACCES, "access token rejected: \(message)", kind: .failure)
    default:
      break
    }
    if number == ENOENT {
      return RemoteError(errno: ENOENT, "the remote root '\(root)' does not exist")
    }
    if number == ENOTDIR {
      return RemoteError(errno: ENOTDIR, "the remote root '\(root)' is not a directory")
    }
    return EnvdErrorMapping.remoteError(
      status: status, body: Array(body.message.utf8), context: "checking the remote root '\(root)'")
  }
}
