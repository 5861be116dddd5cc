import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// The agent as a CoreWeave sandbox: a gRPC server over plaintext HTTP/2 (h2c), which the SDK
/// reaches through an `http://` base URL, or over TLS with `--tls-cert` (`https://`).
struct CoreWeaveServer: Service {
  let services: AgentServices
  let onListening: @Sendable (_ host: String, _ port: Int) async -> Void

  /// Room for a capped file plus framing, and no less than the SDK's own 100 MiB limit.
  var maxMessageBytes: Int { max(services.configuration.coreWeaveFileCap + (1 << 20), 100 << 20) }

  func run() async throws {
    let configuration = services.configuration
    let host = configuration.host == "localhost" ? "127.0.0.1" : configuration.host
    let address: GRPCNIOTransportCore.SocketAddress =
      host.contains(":")
      ? .ipv6(host: host, port: configuration.port) : .ipv4(host: host, port: configuration.port)
    let limit = maxMessageBytes
    let security: HTTP2ServerTransport.Posix.TransportSecurity =
      configuration.tls.map { tls in
        .tls(
          certificateChain: [.file(path: tls.certificateFile, format: .pem)],
          privateKey: .file(path: tls.keyFile, format: .pem))
      } ?? .plaintext
    let transport = HTTP2ServerTransport.Posix(
      address: address, transportSecurity: security,
      config: .defaults { $0.rpc.maxRequestPayloadSize = limit })
    let server = GRPCServer(
      transport: transport,
      services: [CoreWeaveService(sandbox: CoreWeaveSandbox(services: services))],
      interceptors: [CoreWeaveRequestLog(logger: services.logger)]
        + (services.accessToken.map { [CoreWeaveBearerAuth(token: $0)] } ?? []))
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        try await withGracefulShutdownHandler {
          try await server.serve()
        } onGracefulShutdown: {
          server.beginGracefulShutdown()
        }
      }
      let bound = try await transport.listeningAddress
      await onListening(
        configuration.host, bound.ipv4?.port ?? bound.ipv6?.port ?? configuration.port)
    }
  }
}

/// Each call's method at debug level, as the HTTP modes log their routes (tests count them).
struct CoreWeaveRequestLog: ServerInterceptor {
  let logger: Logger

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next:
      @Sendable (StreamingServerRequest<Input>, ServerContext) async throws ->
      StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    logger.debug("gRPC /\(context.descriptor.fullyQualifiedMethod)")
    return try await next(request, context)
  }
}
