import Foundation
import Glibc
import Hummingbird
import Logging

/// `filesystem.Filesystem/WatchDir` (server streaming), and the polling trio CreateWatcher /
/// GetWatcherEvents / RemoveWatcher (unary).
func registerWatchRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
  let quota = WatcherQuota(
    perConnection: services.configuration.watchersPerConnection,
    total: services.configuration.maxWatchers)
  registerPollingWatcherRoutes(
    on: router, services: services, watchers: PollingWatchers(), quota: quota)
  router.post("/filesystem.Filesystem/WatchDir") { request, context in
    await ConnectStreamingCall.respond(to: request, context: context) {
      payload, stream, shutdown in
      let user = try services.rpcUser(for: request)
      let options = try StreamCallOptions(headers: request.headers)
      let message = try StreamRequestReader.decode(WatchDirRequest.self, from: payload)
      let path = try services.rpcPath(message.path, user: user)
      let slot = try quota.acquire(on: context.channel)
      defer { quota.release(slot) }
      let watcher = try await services.blocking { () throws -> DirectoryWatcher in
        try checkWatchable(path, message: message, jail: services.jail)
        return try DirectoryWatcher(jail: services.jail, root: path, recursive: message.recursive)
      }
      let entries =
        message.includeEntry ? EntryLookup(services: services) : nil
      try await streamWatch(
        watcher, options: options, entries: entries, shutdown: shutdown, to: &stream)
    }
  }
}

/// envd's checks before `start`: the path must exist (`not_found`), be a directory and not sit on
/// a network file system (`invalid_argument`).
func checkWatchable(_ path: ProtocolPath, message: WatchDirRequest, jail: RootJail)
  throws(ConnectError)
{
  let fd: FileDescriptor
  do {
    fd = try jail.open(path, flags: LinuxFlags.openPath, operation: "stat")
  } catch {
    if error.code == ENOENT {
      throw ConnectError(.notFound, "path \(path.requested) not found: \(error)")
    }
    throw ConnectError(.internal, "error statting path \(path.requested): \(error)")
  }
  var info = stat()
  guard fstat(fd.raw, &info) == 0 else {
    throw ConnectError(
      .internal, "error statting path \(path.requested): \(SystemError("stat", path.requested))")
  }
  guard info.isDirectory else {
    throw ConnectError(.invalidArgument, "path \(path.requested) not a directory")
  }
  if !message.allowNetworkMounts && NetworkMount.contains(fd) {
    throw ConnectError(
      .invalidArgument, "cannot watch path on network filesystem: \(path.requested)")
  }
}

/// `{"start":{}}` once armed, then events and keepalives until the client leaves, the deadline
/// passes (`deadline_exceeded`), the watcher fails (`internal`) or the agent shuts down
/// (`unavailable`).
private func streamWatch(
  _ watcher: DirectoryWatcher, options: StreamCallOptions, entries: EntryLookup?,
  shutdown: ShutdownNotice, to stream: inout ConnectStreamWriter
) async throws {
  watcher.start()
  let ticker = StreamTicker(
    source: watcher.events, keepalive: options.keepaliveInterval, deadline: options.timeout,
    shutdown: shutdown)
  defer {
    ticker.stop()
    watcher.stop()
  }
  try await stream.send(WatchDirResponse.start)
  for await tick in ticker.ticks {
    switch tick {
    case .element(let batch):
      var messages: [WatchDirResponse] = []
      for event in batch {
        let entry = await entries?.entry(for: event)
        messages.append(
          WatchDirResponse.filesystem(name: event.name, type: event.type, entry: entry))
      }
      try await stream.send(contentsOf: messages)
    case .keepalive:
      try await stream.send(WatchDirResponse.keepalive)
    case .deadline:
      throw ConnectError(.deadlineExceeded, "context deadline exceeded")
    case .shutdown:
      throw ConnectError(.unavailable, "sandbox-agent is shutting down")
    }
  }
  if let failure = watcher.failure { throw failure }
  throw CancellationError()
}

/// `includeEntry`: envd attaches the EntryInfo to CREATE, WRITE and CHMOD events, best effort
/// (the entry may be gone by the time it is looked at).
struct EntryLookup: Sendable {
  let services: AgentServices

  func entry(for event: FilesystemEvent) async -> EntryInfo? {
    guard ["EVENT_TYPE_CREATE", "EVENT_TYPE_WRITE", "EVENT_TYPE_CHMOD"].contains(event.type),
      let path = ProtocolPath(absolute: event.path)
    else { return nil }
    let services = services
    return try? await services.blocking {
      EntryInfo.make(
        path: path, lstat: try services.jail.lstat(path), jail: services.jail,
        names: services.names)
    }
  }
}
