import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Runs the agent until SIGTERM or SIGINT. Shutdown stops accepting, lets in-flight requests
/// finish for up to `gracePeriod`, then cancels them; a requested shutdown returns normally.
public func runAgent(
  configuration: AgentConfiguration,
  logger: Logger,
  gracePeriod: Duration = .seconds(5),
  onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void
) async throws {
  let logger = logger.escapingControlCharacters
  let app: any Service =
    if configuration.wireProtocol == .coreweave {
      try CoreWeaveServer(
        services: AgentServices(configuration: configuration, logger: logger),
        onListening: onListening)
    } else {
      try buildAgentApplication(
        configuration: configuration, logger: logger, onListening: onListening)
    }
  let watcher = ShutdownWatcher()
  // Services shut down in reverse order: the watcher notices first, then the server drains.
  var groupConfiguration = ServiceGroupConfiguration(
    services: [app, watcher], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
  groupConfiguration.maximumGracefulShutdownDuration = gracePeriod
  do {
    try await ServiceGroup(configuration: groupConfiguration).run()
  } catch  where watcher.shutdownRequested {
    logger.debug("stopped after cancelling in-flight requests: \(error)")
  }
}

/// A service that only records that a graceful shutdown was asked for.
private final class ShutdownWatcher: Service, Sendable {
  private let requested = Atomic<Bool>(false)
  var shutdownRequested: Bool { requested.load(ordering: .relaxed) }

  func run() async throws {
    try? await gracefulShutdown()
    requested.store(true, ordering: .relaxed)
  }
}
