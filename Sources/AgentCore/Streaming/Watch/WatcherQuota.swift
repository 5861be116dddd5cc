import Foundation
import NIOCore
import Synchronization

/// Bounds the watchers (streaming and polling) one connection and all clients may hold. Each
/// watcher takes an inotify instance from the agent user's host-wide limit
/// (`fs.inotify.max_user_instances`, 128 by default): unbounded, a client could leave the host's
/// other programs of that user without any.
final class WatcherQuota: Sendable {
  let perConnection: Int
  let total: Int

  /// A watcher's claim; give it back with `release` exactly once.
  struct Slot: Sendable {
    fileprivate let connection: ObjectIdentifier
    fileprivate let generation: UInt64
  }

  private struct State {
    var total = 0
    /// Live watchers by connection; a connection's entry goes when it closes (its polling
    /// watchers then count towards `total` only).
    var byConnection: [ObjectIdentifier: (generation: UInt64, count: Int)] = [:]
    var nextGeneration: UInt64 = 0
  }
  private let state = Mutex(State())

  init(perConnection: Int, total: Int) {
    self.perConnection = perConnection
    self.total = total
  }

  /// Half the host's per-user inotify instances, at most 64: the rest stay for other programs.
  static var defaultTotal: Int {
    let text = try? String(
      contentsOfFile: "/proc/sys/fs/inotify/max_user_instances", encoding: .utf8)
    let instances = text.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 128
    return max(1, min(64, instances / 2))
  }

  /// Claims a watcher for the request's connection, or refuses with `resource_exhausted`.
  func acquire(on channel: any Channel) throws(ConnectError) -> Slot {
    let connection = ObjectIdentifier(channel)
    let outcome = state.withLock { state -> Result<(Slot, isNew: Bool), ConnectError> in
      guard state.total < total else {
        return .failure(
          ConnectError(.resourceExhausted, "too many watchers: the agent allows \(total) in all"))
      }
      var entry = state.byConnection[connection]
      let isNew = entry == nil
      if entry == nil {
        state.nextGeneration += 1
        entry = (state.nextGeneration, 0)
      }
      guard entry!.count < perConnection else {
        return .failure(
          ConnectError(
            .resourceExhausted,
            "too many watchers: the agent allows \(perConnection) per connection"))
      }
      entry!.count += 1
      state.byConnection[connection] = entry
      state.total += 1
      return .success((Slot(connection: connection, generation: entry!.generation), isNew))
    }
    let (slot, isNew) = try outcome.get()
    if isNew {
      channel.closeFuture.whenComplete { [weak self] _ in self?.forget(slot) }
    }
    return slot
  }

  func release(_ slot: Slot) {
    state.withLock { state in
      state.total -= 1
      guard var entry = state.byConnection[slot.connection], entry.generation == slot.generation
      else { return }
      entry.count -= 1
      state.byConnection[slot.connection] = entry.count > 0 ? entry : nil
    }
  }

  private func forget(_ slot: Slot) {
    state.withLock { state in
      if state.byConnection[slot.connection]?.generation == slot.generation {
        state.byConnection[slot.connection] = nil
      }
    }
  }
}
