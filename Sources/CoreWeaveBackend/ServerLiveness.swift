import Backend
import Foundation

/// `--io-timeout` for gRPC, where a call shows no progress until it ends: a call still running
/// after the timeout asks the server a cheap question (the probe); a server that does not answer
/// that either is taken as stalled (`StalledServer`): the call is EIO, and every call fails at
/// once until a probe (one a second) hears the server, as for the HTTP backends.
final class ServerLiveness: Sendable {
  /// Answers when the server does, within `deadline` seconds; throws otherwise.
  typealias Probe = @Sendable (_ deadline: Double) async throws -> Void

  private let ioTimeout: Double
  private let probe: Probe
  private let server: StalledServer

  init(ioTimeout: Double, probe: @escaping Probe) {
    self.ioTimeout = ioTimeout
    self.probe = probe
    server = StalledServer { (try? await probe(1)) != nil ? .answered : .silent }
  }

  /// The probe's share of the timeout: the call is EIO by `ioTimeout` even when it probes.
  private var probeDeadline: Double { min(1, ioTimeout / 4) }

  /// Runs `call`, which is EIO if it outlasts the timeout while the server answers no probe.
  func guarded<T: Sendable>(
    _ context: String, _ call: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    try server.check(context)
    return try await racing(call) { [self] in
      var wait = ioTimeout - probeDeadline
      while true {
        try await Task.sleep(for: .seconds(wait))
        do {
          try await probe(probeDeadline)
        } catch is CancellationError {
          throw CancellationError()
        } catch {
          server.markStalled()
          throw RemoteError(
            errno: EIO,
            "\(context): no answer for \(Int(ioTimeout.rounded(.up))) s, nor to a check")
        }
        wait = ioTimeout
      }
    }
  }

  /// Ends the probing (the client shuts down).
  func stop() {
    server.stop()
  }
}
