import Hummingbird
import NIOCore

/// Per-request context. Auth has already been enforced by `AccessTokenMiddleware` when a
/// handler runs; the user is resolved per route (Basic header for RPCs, `?username=` for /files).
public struct AgentRequestContext: RequestContext {
  public var coreContext: CoreRequestContextStorage
  /// The connection, for streaming calls to notice their client leaving.
  let channel: any Channel

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    channel = source.channel
  }

  /// Bodies are streamed by the handlers, never collected through this limit.
  public var maxUploadSize: Int { 1 << 20 }
}
