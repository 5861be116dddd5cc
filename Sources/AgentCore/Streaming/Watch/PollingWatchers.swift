import Foundation
import Hummingbird

/// A watcher made by `CreateWatcher`: it outlives the request and collects events until
/// `GetWatcherEvents` drains them or `RemoveWatcher` ends it (envd's `FileWatcher`).
final class PollingWatcher: @unchecked Sendable {
  private let watcher: DirectoryWatcher
  private let lock = NSLock()
  private var pending: [(event: FilesystemEvent, entry: EntryInfo?)] = []
  private var failure: ConnectError?
  private var collector: Task<Void, Never>?

  /// envd's buffer is unbounded; past this many undrained events the watcher fails instead.
  static let pendingLimit = 1 << 20

  init(watcher: DirectoryWatcher, entries: EntryLookup?) {
    self.watcher = watcher
    watcher.start()
    collector = Task { [weak self] in
      for await event in watcher.events {
        let entry = await entries?.entry(for: event)
        guard let self else { return }
        let overflow = self.lock.withLock {
          self.pending.append((event, entry))
          return self.pending.count > Self.pendingLimit
        }
        if overflow {
          self.fail(ConnectError(.internal, "watcher error: fsnotify: queue or buffer overflow"))
          return
        }
      }
      if let error = watcher.failure { self?.fail(error) }
    }
  }

  private func fail(_ error: ConnectError) {
    lock.withLock {
      if failure == nil { failure = error }
      pending = []
    }
    watcher.stop()
  }

  /// The events since the last call, or the watcher's terminal error.
  func drain() throws(ConnectError) -> [(event: FilesystemEvent, entry: EntryInfo?)] {
    let result = lock.withLock {
      () -> Result<[(event: FilesystemEvent, entry: EntryInfo?)], ConnectError> in
      if let failure { return .failure(failure) }
      defer { pending = [] }
      return .success(pending)
    }
    return try result.get()
  }

  func close() {
    collector?.cancel()
    watcher.stop()
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
  on router: Router<AgentRequestContext>, services: AgentServices, watchers: PollingWatchers
) {
  router.post("/filesystem.Filesystem/CreateWatcher") { request, _ in
    await ConnectUnaryCall.respond(to: request, WatchDirRequest.self) {
      message throws(ConnectError) in
      let user = try services.rpcUser(for: request)
      let path = try services.rpcPath(message.path, user: user)
      let watcher: DirectoryWatcher
      do {
        watcher = try await services.blocking { () throws -> DirectoryWatcher in
          try checkWatchable(path, message: message, jail: services.jail)
          return try DirectoryWatcher(jail: services.jail, root: path, recursive: message.recursive)
        }
      } catch let error as ConnectError {
        throw error
      } catch {
        throw ConnectError(.internal, "error creating watcher: \(error)")
      }
      let entries =
        message.includeEntry ? EntryLookup(services: services) : nil
      return WatcherID(watchers.add(PollingWatcher(watcher: watcher, entries: entries)))
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
