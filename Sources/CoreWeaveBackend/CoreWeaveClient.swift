import Backend
import CoreWeaveProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Synchronization

/// CoreWeave's `coreweave.sandbox.v1.SandboxService` over one HTTP/2 connection (TLS, or h2c
/// for an `http://` base): deadlines on every call, the bearer key, retries of UNAVAILABLE and
/// RESOURCE_EXHAUSTED, and `google.rpc.ErrorInfo` reasons as errnos. Knows nothing of POSIX.
final class CoreWeaveClient: Sendable {
  typealias Transport = HTTP2ClientTransport.Posix
  typealias Service = Coreweave_Sandbox_V1_SandboxService.Client<Transport>

  let configuration: CoreWeaveConfiguration
  let endpoint: CoreWeaveConfiguration.Endpoint
  let service: Service
  private let grpc: GRPCClient<Transport>
  private let connections: Task<Void, Never>
  private let metadata: Metadata
  /// The unary cap, lowered when the server reports a smaller `max_size_bytes`.
  private let cap: Atomic<Int>
  /// `--io-timeout` for calls that show no progress until they end.
  let liveness: ServerLiveness

  /// The SDK's channel limit, and never less than a capped file plus framing.
  var messageLimit: Int { max(configuration.fileCap + (1 << 20), 100 << 20) }
  var fileCap: Int { cap.load(ordering: .relaxed) }

  init(configuration: CoreWeaveConfiguration) throws {
    self.configuration = configuration
    endpoint = try CoreWeaveConfiguration.endpoint(of: configuration.baseURL)
    guard !configuration.sandboxID.isEmpty else {
      throw RemoteError(errno: EINVAL, "the sandbox ID is empty")
    }
    var metadata: Metadata = [:]
    if let key = configuration.apiKey {
      guard !key.isEmpty, !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
        throw RemoteError(
          errno: EINVAL, "the CoreWeave API key is empty or holds control characters")
      }
      metadata.addString("Bearer \(key)", forKey: "authorization")
    }
    self.metadata = metadata
    cap = Atomic(configuration.fileCap)
    let caFile = configuration.caFile
    let security: Transport.TransportSecurity =
      endpoint.tls
      ? .tls { tls in
        if let caFile { tls.trustRoots = .certificates([.file(path: caFile, format: .pem)]) }
      } : .plaintext
    let ioTimeout = configuration.ioTimeout
    let transport = try Transport(
      target: Self.target(endpoint), transportSecurity: security,
      config: .defaults { config in
        // A connection that stops answering pings is dropped, and its calls fail.
        config.connection.keepalive = .init(
          time: .seconds(max(10, ioTimeout)), timeout: .seconds(max(5, ioTimeout / 2)),
          allowWithoutCalls: false)
        config.backoff = .init(
          initial: .milliseconds(200), max: .seconds(5), multiplier: 1.6,
          jitter: 0.2)
      })
    let grpc = GRPCClient(transport: transport)
    self.grpc = grpc
    connections = Task { try? await grpc.runConnections() }
    let service = Service(wrapping: grpc)
    self.service = service
    let probeRequest = Coreweave_Sandbox_V1_GetSandboxRequest.with {
      $0.sandboxID = configuration.sandboxID
    }
    let probeMetadata = metadata
    liveness = ServerLiveness(ioTimeout: ioTimeout) { deadline in
      var options = CallOptions.defaults
      options.timeout = .milliseconds(Int64(deadline * 1000))
      options.waitForReady = false
      _ = try await service.getSandbox(probeRequest, metadata: probeMetadata, options: options)
    }
  }

  /// An address literal is its own target: through `.dns` it would become the TLS server name,
  /// which may not be an address (NIOSSL refuses it); without one the certificate is checked
  /// against the peer's address.
  private static func target(_ endpoint: CoreWeaveConfiguration.Endpoint)
    -> any ResolvableTarget
  {
    var v4 = in_addr()
    var v6 = in6_addr()
    if inet_pton(AF_INET, endpoint.host, &v4) == 1 {
      return ResolvableTargets.IPv4.ipv4(host: endpoint.host, port: endpoint.port)
    }
    if inet_pton(AF_INET6, endpoint.host, &v6) == 1 {
      return ResolvableTargets.IPv6.ipv6(host: endpoint.host, port: endpoint.port)
    }
    return ResolvableTargets.DNS.dns(host: endpoint.host, port: endpoint.port)
  }

  /// Stops the connection: calls in flight get a moment, then are cancelled.
  func shutdown() async {
    liveness.stop()
    grpc.beginGracefulShutdown()
    let connections = self.connections
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await connections.value }
      group.addTask { try? await Task.sleep(for: .seconds(2)) }
      await group.next()
      connections.cancel()
      group.cancelAll()
    }
  }

  func options(deadline: Double) -> CallOptions {
    var options = CallOptions.defaults
    options.timeout = .milliseconds(Int64(max(deadline, 0.001) * 1000))
    options.maxRequestMessageBytes = messageLimit
    options.maxResponseMessageBytes = messageLimit
    // A connection that is down fails the call at once; the retries here wait instead.
    options.waitForReady = false
    return options
  }

  /// A transfer's deadline: the request timeout plus `bytes` at the slowest rate allowed.
  func deadline(bytes: Int) -> Double {
    configuration.requestTimeout + Double(bytes) / configuration.slowestTransferRate
  }

  // MARK: unary calls

  func getSandbox() async throws -> Coreweave_Sandbox_V1_Sandbox {
    let request = Coreweave_Sandbox_V1_GetSandboxRequest.with {
      $0.sandboxID = configuration.sandboxID
    }
    let options = options(deadline: configuration.connectTimeout + configuration.requestTimeout)
    return try await withRetries(context: "GetSandbox") { [self] in
      try await service.getSandbox(request, metadata: metadata, options: options)
    }
  }

  /// `ReadFile`: the whole file. Throws `FileTooLarge` past the server's cap.
  func readFile(_ sandboxPath: String, expectedSize: UInt64, context: String) async throws -> Data {
    let request = Coreweave_Sandbox_V1_ReadFileRequest.with {
      $0.sandboxID = configuration.sandboxID
      $0.path = sandboxPath
    }
    let options = options(deadline: deadline(bytes: Int(min(expectedSize, 1 << 40))))
    return try await withRetries(context: context) { [self] in
      try await service.readFile(request, metadata: metadata, options: options).content
    }
  }

  /// `WriteFile`: creates or truncates `sandboxPath` (its parent must exist). Throws
  /// `FileTooLarge` past the server's cap.
  func writeFile(_ sandboxPath: String, content: Data, context: String) async throws {
    let request = Coreweave_Sandbox_V1_WriteFileRequest.with {
      $0.sandboxID = configuration.sandboxID
      $0.path = sandboxPath
      $0.content = content
    }
    let options = options(deadline: deadline(bytes: content.count))
    _ = try await withRetries(context: context) { [self] in
      try await service.writeFile(request, metadata: metadata, options: options)
    }
  }

  // MARK: StreamExec

  /// What a command's stdin gets: nothing, bytes, or `size` bytes of a local file.
  enum Input: Sendable {
    case none
    case bytes([UInt8])
    case file(descriptor: Int32, size: Int64)
  }

  struct Ending: Sendable {
    /// nil: no exit message (the stream ended or failed first).
    var exitCode: Int32?
    var stderr: [UInt8]
    var status: String
  }

  static let stdinChunk = 1 << 20
  static let stderrLimit = 64 << 10

  /// Runs `argv` through `StreamExec`: stdin in 1 MiB frames, then `close`; each stdout chunk
  /// goes to `onStdout` as it arrives, and the next is read only once it returned (HTTP/2 flow
  /// control then holds the server). `stall`: a stream that moves no byte for that long is
  /// cancelled (EIO). A call that failed before the command started is retried.
  func streamExec(
    _ argv: [String], environment: [String: String], input: Input, deadline: Double,
    stall: Double?, context: String,
    onStdout: @escaping @Sendable (Data) async throws -> Void
  ) async throws -> Ending {
    let options = options(deadline: deadline)
    let start = Coreweave_Sandbox_V1_ExecStreamRequest.with {
      $0.init_p = .with {
        $0.sandboxID = configuration.sandboxID
        $0.command = argv
        $0.env = environment
      }
    }
    var attempt = 0
    let began = ContinuousClock.now
    while true {
      let activity = StreamActivity()
      do {
        return try await liveness.guarded(context) { [self] in
          try await activity.watch(stall: stall, context: context) { [self] in
            try await service.streamExec(
              metadata: metadata, options: options,
              requestProducer: { writer in
                try await writer.write(start)
                try await Self.send(input, to: writer, activity: activity)
                try await writer.write(.with { $0.close = .init() })
              },
              onResponse: { response in
                try await Self.receive(response, activity: activity, onStdout: onStdout)
              })
          }
        }
      } catch let error as RPCError
        where !activity.started && mayRetry(error, attempt: attempt, since: began)
      {
        try await Task.sleep(for: .seconds(configuration.retryDelays[attempt]))
        attempt += 1
      } catch {
        throw map(error, context: context)
      }
    }
  }

  private static func send(
    _ input: Input, to writer: RPCWriter<Coreweave_Sandbox_V1_ExecStreamRequest>,
    activity: StreamActivity
  ) async throws {
    switch input {
    case .none:
      return
    case .bytes(let bytes):
      var offset = 0
      while offset < bytes.count {
        let end = min(offset + stdinChunk, bytes.count)
        try await writer.write(.with { $0.stdin = Data(bytes[offset..<end]) })
        activity.touch()
        offset = end
      }
    case .file(let descriptor, let size):
      var offset: Int64 = 0
      while offset < size {
        let count = Int(min(Int64(stdinChunk), size - offset))
        let chunk = try await LocalFile.read(descriptor, offset: offset, count: count)
        try await writer.write(.with { $0.stdin = chunk })
        activity.touch()
        offset += Int64(count)
      }
    }
  }

  private static func receive(
    _ response: StreamingClientResponse<Coreweave_Sandbox_V1_ExecStreamResponse>,
    activity: StreamActivity, onStdout: @Sendable (Data) async throws -> Void
  ) async throws -> Ending {
    var stderr: [UInt8] = []
    var exitCode: Int32?
    var failure: String?
    for try await message in response.messages {
      activity.touch()
      switch message.message {
      case .ready:
        activity.markStarted()
      case .output(let output):
        activity.markStarted()
        if output.stream == .stderr {
          stderr += output.data.prefix(max(0, stderrLimit - stderr.count))
        } else {
          try await onStdout(output.data)
        }
      case .exit(let exit):
        exitCode = exit.exitCode
      case .error(let error):
        // STREAM_BACKPRESSURE, STREAM_TRUNCATED: output was lost; the caller sees no exit.
        failure = "\(error.code): \(error.message)"
      case nil:
        break
      }
    }
    let status =
      failure.map { "the stream failed (\($0))" }
      ?? exitCode.map { "exit status \($0)" } ?? "the stream ended without an exit status"
    return Ending(exitCode: failure == nil ? exitCode : nil, stderr: stderr, status: status)
  }

  // MARK: errors

  /// A call past the server's unary cap: the caller streams instead.
  struct FileTooLarge: Error {
    var size: Int?
    var limit: Int?
  }

  /// UNAVAILABLE, and RESOURCE_EXHAUSTED that is no size limit.
  static func isTransient(_ error: RPCError) -> Bool {
    switch error.code {
    case .unavailable: return true
    case .resourceExhausted: return reason(of: error) == nil && !isFrameLimit(error)
    default: return false
    }
  }

  private static func isFrameLimit(_ error: RPCError) -> Bool {
    error.code == .resourceExhausted && error.message.lowercased().contains("larger than")
  }

  /// The ErrorInfo of CoreWeave's domain in `grpc-status-details-bin`.
  static func reason(of error: RPCError) -> GRPCProtobuf.ErrorDetails.ErrorInfo? {
    guard let status = try? error.unpackGoogleRPCStatus() else { return nil }
    return status.details.lazy.compactMap(\.errorInfo).first { $0.domain == "cwsandbox.com" }
  }

  /// A transient failure is retried while `--io-timeout` leaves a second after the wait; a
  /// connection that could not be made (a stopped or killed server) is not: it is EIO at once.
  private func mayRetry(_ error: RPCError, attempt: Int, since began: ContinuousClock.Instant)
    -> Bool
  {
    guard Self.isTransient(error), !Self.isUnreachable(error),
      attempt < configuration.retryDelays.count
    else { return false }
    let elapsed = ContinuousClock.now - began
    return elapsed + .seconds(configuration.retryDelays[attempt] + 1)
      <= .seconds(configuration.ioTimeout)
  }

  /// The channel failed to connect and does not wait for one (grpc-swift's words for it).
  static func isUnreachable(_ error: RPCError) -> Bool {
    error.code == .unavailable && error.message.contains("transient failure")
  }

  private func withRetries<T: Sendable>(
    context: String, _ call: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    var attempt = 0
    let began = ContinuousClock.now
    while true {
      do {
        return try await liveness.guarded(context, call)
      } catch let error as RPCError where mayRetry(error, attempt: attempt, since: began) {
        try await Task.sleep(for: .seconds(configuration.retryDelays[attempt]))
        attempt += 1
      } catch {
        throw map(error, context: context)
      }
    }
  }

  private func noSandbox(context: String, detail: String) -> RemoteError {
    RemoteError(
      errno: EIO,
      "\(context): no sandbox '\(configuration.sandboxID)' at \(configuration.baseURL) (\(detail))",
      kind: .failure)
  }

  /// A failed call as the errno the kernel should see (or `FileTooLarge`).
  func map(_ error: any Error, context: String) -> any Error {
    if error is RemoteError || error is FileTooLarge || error is LocalError { return error }
    guard let rpc = error as? RPCError else {
      if error is CancellationError { return error }
      return RemoteError(errno: EIO, "\(context): \(error)")
    }
    let detail = rpc.message.isEmpty ? "\(rpc.code)" : rpc.message
    if let info = Self.reason(of: rpc) {
      switch info.reason {
      case "CWSANDBOX_FILE_NOT_FOUND": return RemoteError(errno: ENOENT, "\(context): \(detail)")
      case "CWSANDBOX_FILE_IS_DIRECTORY": return RemoteError(errno: EISDIR, "\(context): \(detail)")
      case "CWSANDBOX_FILE_PERMISSION_DENIED":
        return RemoteError(errno: EACCES, "\(context): \(detail)")
      case "CWSANDBOX_FILE_TOO_LARGE":
        let limit = info.metadata["max_size_bytes"].flatMap(Int.init)
        if let limit, limit > 0 {
          // As the SDK: the server's word, clamped below 100 MiB less framing.
          let clamped = min(limit, (100 << 20) - (1 << 20))
          cap.store(min(cap.load(ordering: .relaxed), clamped), ordering: .relaxed)
        }
        return FileTooLarge(size: info.metadata["size_bytes"].flatMap(Int.init), limit: limit)
      case "CWSANDBOX_SANDBOX_NOT_FOUND":
        return noSandbox(context: context, detail: detail)
      case "CWSANDBOX_COMMAND_TIMEOUT":
        return RemoteError(errno: ETIMEDOUT, "\(context): \(detail)")
      default:
        break
      }
    }
    if Self.isFrameLimit(rpc) { return FileTooLarge(size: nil, limit: nil) }
    switch rpc.code {
    case .deadlineExceeded:
      return RemoteError(errno: ETIMEDOUT, "\(context): no answer before the deadline (\(detail))")
    case .unauthenticated:
      return RemoteError(
        errno: EACCES, "\(context): the server refused the API key (\(detail))", kind: .failure)
    case .permissionDenied:
      return RemoteError(errno: EACCES, "\(context): \(detail)")
    case .notFound:
      // Without a reason, NOT_FOUND is the sandbox's, as the SDK reads it.
      return noSandbox(context: context, detail: detail)
    case .invalidArgument:
      return RemoteError(errno: EINVAL, "\(context): \(detail)")
    case .unimplemented:
      return RemoteError(errno: EOPNOTSUPP, "\(context): \(detail)")
    case .unavailable:
      return RemoteError(
        errno: EIO, "\(context): the server at \(configuration.baseURL) is unavailable (\(detail))")
    default:
      return RemoteError(errno: EIO, "\(context): \(rpc.code): \(detail)")
    }
  }
}

/// When a stream last moved a byte, and whether its command started.
final class StreamActivity: Sendable {
  private let last = Atomic<Int64>(StreamActivity.now())
  private let startedFlag = Atomic<Bool>(false)

  var started: Bool { startedFlag.load(ordering: .relaxed) }
  func markStarted() { startedFlag.store(true, ordering: .relaxed) }
  func touch() { last.store(Self.now(), ordering: .relaxed) }

  private static func now() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
  }

  /// Runs `body`; when `stall` is set and nothing moves for that long, cancels it and throws
  /// EIO.
  func watch<T: Sendable>(
    stall: Double?, context: String, _ body: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    guard let stall else { return try await body() }
    return try await racing(body) {
      let limit = Int64(stall * 1e9)
      while true {
        try await Task.sleep(for: .milliseconds(Int64(min(1, stall / 4) * 1000)))
        if Self.now() - self.last.load(ordering: .relaxed) > limit {
          throw RemoteError(
            errno: EIO, "\(context): the stream moved no byte for \(Int(stall)) s; cancelled")
        }
      }
    }
  }
}

/// Runs `body` beside `watchdog`, which only ever ends by throwing: the first to finish decides,
/// and the other is cancelled.
func racing<T: Sendable>(
  _ body: @escaping @Sendable () async throws -> T,
  watchdog: @escaping @Sendable () async throws -> Void
) async throws -> T {
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await watchdog()
      return nil
    }
    defer { group.cancelAll() }
    while let result = try await group.next() {
      if let result { return result }
    }
    throw CancellationError()
  }
}
