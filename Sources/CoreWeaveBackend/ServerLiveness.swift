import Backend
import Foundation
import Synchronization

/// `--io-timeout` for gRPC, where a call shows no progress until it ends: a call still running
/// after the timeout asks the server a cheap question (the probe); a server that does not answer
/// that either is taken as stalled. The call is then EIO, and every call fails at once until a
/// probe (one a second) hears the server, as `StallLatch` does for the HTTP backends.
final class ServerLiveness: Sendable {
  /// Answers when the server does, within `deadline` seconds; throws otherwise.
  typealias Probe = @Sendable (_ deadline: Double) async throws -> Void

  private struct State {
    var stalled = false
    var probing = false
    var stopped = false
  }

  private let state = Mutex(State())
  private let ioTimeout: Double
  private let probe: Probe

  init(ioTimeout: Double, probe: @escaping Probe) {
    self.ioTimeout = ioTimeout
    self.probe = probe
  }

  /// The probe's share of the timeout: the call is EIO by `ioTimeout` even when it probes.
  private var probeDeadline: Double { min(1, ioTimeout / 4) }

  var isStalled: Bool { state.withLock { $0.stalled } }

  /// Throws EIO while the server is taken as stalled.
  func check(_ context: String) throws {
    guard isStalled else { return }
    throw RemoteError(
      errno: EIO,
      "\(context): the server stopped answering (a check every second tells when it is back)")
  }

  /// Runs `call`, which is EIO if it outlasts the timeout while the server answers no probe.
  func guarded<T: Sendable>(
    _ context: String, _ call: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    try check(context)
    return try await withThrowingTaskGroup(of: T?.self) { group in
      group.addTask { try await call() }
      group.addTask { [self] in
        var wait = ioTimeout - probeDeadline
        while true {
          try await Task.sleep(for: .seconds(wait))
          do {
            try await probe(probeDeadline)
          } catch is CancellationError {
            throw CancellationError()
          } catch {
            markStalled()
            throw RemoteError(
              errno: EIO,
              "\(context): no answer for \(Int(ioTimeout.rounded(.up))) s, nor to a check")
          }
          wait = ioTimeout
        }
      }
      defer { group.cancelAll() }
      while let result = try await group.next() {
        if let result { return result }
      }
      throw CancellationError()
    }
  }

  /// Ends the probing (the client shuts down).
  func stop() {
    state.withLock { $0.stopped = true }
  }

  /// Takes the server as stalled and starts probing, unless that runs already.
  func markStalled() {
    let start = state.withLock { state -> Bool in
      state.stalled = true
      defer { state.probing = true }
      return !state.probing
    }
    guard start else { return }
    Task { [self] in
      while !state.withLock({ $0.stopped }) {
        try? await Task.sleep(for: .seconds(1))
        if (try? await probe(1)) != nil {
          state.withLock {
            $0.stalled = false
            $0.probing = false
          }
          return
        }
      }
    }
  }
}
