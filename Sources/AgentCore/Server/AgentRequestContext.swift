import Hummingbird

/// Per-request context. Auth has already been enforced by `AccessTokenMiddleware` when a
/// handler runs; the user is resolved per route (Basic header for RPCs, `?username=` for /files).
public struct AgentRequestContext: RequestContext {
  public var coreContext: CoreRequestContextStorage

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
  }

  /// Bodies are streamed by the handlers, never collected through this limit.
  public var maxUploadSize: Int { 1 << 20 }
}
