import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore

/// The agent's router: middleware (log → auth → fallback) and every route.
public func buildAgentRouter(services: AgentServices) -> Router<AgentRequestContext> {
  let router = Router(context: AgentRequestContext.self)
  router.add(middleware: RequestLogMiddleware(counters: services.counters))
  router.add(middleware: AccessTokenMiddleware(token: services.accessToken))
  router.add(middleware: FallbackMiddleware())
  registerHTTPRoutes(on: router, services: services)
  registerFilesystemRoutes(on: router, services: services)
  registerStreamingRoutes(on: router, services: services)
  registerExtensionRoutes(on: router, services: services)
  return router
}

/// Builds the whole agent. `onListening` gets the bound host and the real port (useful with port 0).
public func buildAgentApplication(
  configuration: AgentConfiguration,
  logger: Logger,
  onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }
) throws -> some ApplicationProtocol {
  let services = try AgentServices(configuration: configuration, logger: logger)
  let langSmith =
    configuration.wireProtocol == .langsmith ? LangSmithSandbox(services: services) : nil
  let router =
    switch configuration.wireProtocol {
    case .envd: buildAgentRouter(services: services)
    case .vercel: try buildVercelRouter(services: services)
    case .langsmith: buildLangSmithRouter(sandbox: langSmith!)
    case .coreweave: throw AgentApplicationError.grpcOnly
    }
  let host = configuration.host
  let inlineRoutes = services.inlineUnary.snapshot
  let counters = services.counters
  let token = services.accessToken
  let headTimeout = TimeAmount(configuration.requestHeadTimeout)
  var server: HTTPServerBuilder
  if let langSmith {
    // LangSmith runs commands over a WebSocket (`/execute/ws`); everything else is plain HTTP.
    server = HTTPServerBuilder { responder in
      RequestHeadTimeoutChannel(
        inner: HTTP1WebSocketUpgradeChannel(
          responder: responder,
          configuration: .init(
            http1: .init(
              additionalChannelHandlers: [RequestHeadWatcher(addedAfterHead: true)],
              idleTimeout: .seconds(300), httpDecoderConfiguration: agentHeadLimits),
            ws: .init(maxFrameSize: 16 << 20)),
          shouldUpgrade: { request, _, _ in langSmith.shouldUpgrade(request) }),
        timeout: headTimeout)
    }
  } else {
    server = HTTPServerBuilder { responder in
      RequestHeadTimeoutChannel(
        inner: EventLoopPinnedChannel(
          inner: HTTP1Channel(
            responder: responder,
            configuration: .init(
              additionalChannelHandlers: [
                RequestHeadWatcher(), ExpectContinueHandler(), FlushCoalescingHandler(),
              ],
              idleTimeout: .seconds(300), httpDecoderConfiguration: agentHeadLimits)),
          lastHandlers: {
            [
              InputClosedHandler(),
              InlineUnaryHandler(
                routes: inlineRoutes, counters: counters, token: token, logger: logger),
            ]
          }),
        timeout: headTimeout)
    }
  }
  if let tls = configuration.tls {
    // TLS first in the pipeline; the channels above see plain HTTP as before.
    server = try .tls(server, tlsConfiguration: tls.serverConfiguration)
  }
  return Application(
    router: router,
    server: server,
    configuration: .init(
      address: .hostname(host, port: configuration.port), serverName: nil,
      availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections)),
    services: langSmith.map { [LangSmithShutdown(sandbox: $0)] } ?? [],
    onServerRunning: { channel in
      await onListening(host, channel.localAddress?.port ?? configuration.port)
    },
    logger: logger)
}

/// A request head (request line and headers) is at most 64 KiB, in at most 256 fields.
let agentHeadLimits = HTTP1Channel.Configuration.DecoderConfiguration(
  maxHeaderFieldSize: 64 << 10, maxHeaderListSize: 64 << 10, maxHeaderFieldCount: 256)

/// `--protocol coreweave` is served by `CoreWeaveServer` (gRPC), not by this HTTP application.
public enum AgentApplicationError: Error {
  case grpcOnly
}
