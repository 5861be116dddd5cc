import Foundation
import Hummingbird

/// A watcher made by `CreateWatcher`: it outlives the request and collects events until
/// `GetWatcherEvents` drains them or `RemoveWatcher` ends it (envd's `FileWatcher`).
///
/// envd's buffer is unbounded. Here at most `pendingLimit` events wait; past that, events are
/// dropped and the next drain ends with one `overflowEvent`, as inotify queues `IN_Q_OVERFLOW`:
/// the client then knows to rescan.
final class PollingWatcher: @unchecked Sendable {
  private let watcher: DirectoryWatcher
  private let slot: WatcherQuota.Slot
  private let quota: WatcherQuota
  private let lock = NSLock()
  private var pending: [(event: FilesystemEvent, entry: EntryInfo?)] = []
  private var overflowed = false
  private var failure: ConnectError?
  private var collector: Task<Void, Never>?
  private var closed = false

  static let pendingLimit = 4096
  /// No name, type `EVENT_TYPE_UNSPECIFIED` (0): events were lost.
  static let overflowEvent = FilesystemEvent(name: "", type: "EVENT_TYPE_UNSPECIFIED", path: "")

  init(
    watcher: DirectoryWatcher, entries: EntryLookup?, slot: WatcherQuota.Slot, quota: WatcherQuota
  ) {
    self.watcher = watcher
    self.slot = slot
    self.quota = quota
    watcher.start()
    collector = Task { [weak self] in
      for await batch in watcher.events {
        for event in batch {
          guard let hasRoom = self?.hasRoom else { return }
          // An event that will be dropped needs no entry looked up.
          let entry = hasRoom ? await entries?.entry(for: event) : nil
          guard let self else { return }
          self.accept(event, entry: entry)
        }
      }
      if let error = watcher.failure { self?.fail(error) }
    }
  }

  private var hasRoom: Bool { lock.withLock { pending.count < Self.pendingLimit } }

  private func accept(_ event: FilesystemEvent, entry: EntryInfo?) {
    lock.withLock {
      if pending.count < Self.pendingLimit {
        pending.append((event, entry))
      } else {
        overflowed = true
      }
    }
  }

  private func fail(_ error: ConnectError) {
    lock.withLock {
      if failure == nil { failure = error }
      pending = []
    }
    watcher.stop()
  }

  /// The events since the last call (the last one `overflowEvent` if some were lost), or the
  /// watcher's terminal error.
  func drain() throws(ConnectError) -> [(event: FilesystemEvent, entry: EntryInfo?)] {
    let result = lock.withLock {
      () -> Result<[(event: FilesystemEvent, entry: EntryInfo?)], ConnectError> in
      if let failure { return .failure(failure) }
      var drained = pending
      if overflowed { drained.append((Self.overflowEvent, nil)) }
      pending = []
      overflowed = false
      return .success(drained)
    }
    return try result.get()
  }

  func close() {
    let first = lock.withLock {
      defer { closed = true }
      return !closed
    }
    guard first else { return }
    collector?.cancel()
    watcher.stop()
    quota.release(slot)
  }
}

/// Polling watchers by id.
final class PollingWatchers: @unchecked Sendable {
  private let lock = NSLock()
  private var byID: [String: PollingWatcher] = [:]

  func add(_ watcher: PollingWatcher) -> String {
    lock.withLock {
      var id: String
      repeat { id = "w" + Self.randomID() } while byID[id] != nil
      byID[id] = watcher
      return id
    }
  }

  func find(_ id: String) throws(ConnectError) -> PollingWatcher {
    guard let watcher = lock.withLock({ byID[id] }) else {
      throw ConnectError(.notFound, "watcher with id \(id) not found")
    }
    return watcher
  }

  func remove(_ id: String) throws(ConnectError) {
    guard let watcher = lock.withLock({ byID.removeValue(forKey: id) }) else {
      throw ConnectError(.notFound, "watcher with id \(id) not found")
    }
    watcher.close()
  }

  private static func randomID() -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<16).map { _ in alphabet.randomElement()! })
  }
}

/// `{"watcherId":"…"}` in requests and in CreateWatcher's answer.
struct WatcherID: Codable, Sendable {
  var watcherId: String

  init(_ watcherId: String) { self.watcherId = watcherId }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    watcherId = try container.proto(String.self, "watcherId", "watcher_id") ?? ""
  }
}

/// `GetWatcherEventsResponse`: `{"events":[FilesystemEvent…]}`, omitted when empty.
struct WatcherEvents: Encodable {
  var events: [(event: FilesystemEvent, entry: EntryInfo?)]

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: ProtoKey.self)
    guard !events.isEmpty else { return }
    var list = container.nestedUnkeyedContainer(forKey: ProtoKey(stringValue: "events"))
    for (event, entry) in events {
      var item = list.nestedContainer(keyedBy: ProtoKey.self)
      try item.encode(event.name, forKey: ProtoKey(stringValue: "name"))
      try item.encode(event.type, forKey: ProtoKey(stringValue: "type"))
      if let entry { try item.encode(entry, forKey: ProtoKey(stringValue: "entry")) }
    }
  }
}

func registerPollingWatcherRoutes(
  on router: Router<AgentRequestContext>, services: AgentServices, watchers: PollingWatchers,
  quota: WatcherQuota
) {
  router.post("/filesystem.Filesystem/CreateWatcher") { request, context in
    await ConnectUnaryCall.respond(to: request, WatchDirRequest.self) {
      message throws(ConnectError) in
      let user = try services.rpcUser(for: request)
      let path = try services.rpcPath(message.path, user: user)
      let slot = try quota.acquire(on: context.channel)
      let watcher: DirectoryWatcher
      do {
        watcher = try await services.blocking { () throws -> DirectoryWatcher in
          try checkWatchable(path, message: message, jail: services.jail)
          return try DirectoryWatcher(jail: services.jail, root: path, recursive: message.recursive)
        }
      } catch let error as ConnectError {
        quota.release(slot)
        throw error
      } catch {
        quota.release(slot)
        throw ConnectError(.internal, "error creating watcher: \(error)")
      }
      let entries =
        message.includeEntry ? EntryLookup(services: services) : nil
      return WatcherID(
        watchers.add(PollingWatcher(watcher: watcher, entries: entries, slot: slot, quota: quota)))
    }
  }

  router.post("/filesystem.Filesystem/GetWatcherEvents") { request, _ in
    await ConnectUnaryCall.respond(to: request, WatcherID.self) { message throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      return WatcherEvents(events: try watchers.find(message.watcherId).drain())
    }
  }

  router.post("/filesystem.Filesystem/RemoveWatcher") { request, _ in
    await ConnectUnaryCall.respond(to: request, WatcherID.self) { message throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      try watchers.remove(message.watcherId)
      return EmptyMessage()
    }
  }
}
