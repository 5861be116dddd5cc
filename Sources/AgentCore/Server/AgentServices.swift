import Hummingbird
import Logging
import NIOPosix

/// Shared state every route handler gets: configuration, the root jail, user resolution.
public final class AgentServices: Sendable {
  public let configuration: AgentConfiguration
  public let jail: RootJail
  public let users: UserResolver
  public let accessToken: AccessToken?
  public let logger: Logger
  public let names: OwnerNames
  public let counters = AgentCounters()
  /// Light calls `InlineUnaryHandler` answers without the router.
  let inlineUnary = InlineUnaryRoutes()

  public init(configuration: AgentConfiguration, logger: Logger) throws(SystemError) {
    self.configuration = configuration
    self.jail = try RootJail(root: configuration.root)
    self.users = UserResolver()
    self.accessToken = configuration.accessToken.map(AccessToken.init)
    self.logger = logger
    self.names = OwnerNames()
  }

  /// The RPC caller's user (`Authorization: Basic base64(user:)`, else the default user).
  public func rpcUser(for request: Request) throws(ConnectError) -> AgentUser {
    try users.rpcUser(authorization: request.headers[.authorization])
  }

  /// Expands an RPC path for `user`; a bad path is Connect `invalid_argument`.
  public func rpcPath(_ raw: String, user: AgentUser) throws(ConnectError) -> ProtocolPath {
    do {
      return try ProtocolPath.expand(raw, user: user)
    } catch {
      throw ConnectError(.invalidArgument, error.message)
    }
  }

  /// Runs blocking file system work on NIO's thread pool, off Swift's cooperative threads.
  public func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(work)
  }
}
