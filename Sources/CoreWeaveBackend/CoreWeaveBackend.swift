import Backend
import ExecLayer
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A CoreWeave sandbox as a `RemoteFilesystem`, over gRPC. Data: files up to the unary cap
/// through `ReadFile`/`WriteFile` (whole files, checked against the size stat'ed before);
/// ranges of larger files through `dd`, and larger files whole through `cat`, both over
/// `StreamExec` and streamed with backpressure. Uploads go to a temporary name that one command
/// renames over the target (`ExecFilesystem.upload`). Metadata goes through the exec layer over
/// `StreamExec`: the API has no stat or list of its own.
public final class CoreWeaveBackend: ExecMetadataBackend {
  public let exec: ExecFilesystem
  let client: CoreWeaveClient
  public let batches: ExecBatch

  /// Files up to this size are read whole through `ReadFile` for any range: one unary call
  /// costs less than a command.
  static let wholeReadLimit = 4 << 20

  private init(client: CoreWeaveClient) {
    self.client = client
    var root = client.configuration.remoteRoot
    while root.count > 1, root.hasSuffix("/") { root.removeLast() }
    let prefix = root == "/" ? "" : root
    exec = ExecFilesystem(executor: CoreWeaveExecutor(client: client)) { path in
      path == "/" || path.isEmpty ? (prefix.isEmpty ? "/" : prefix) : prefix + path
    }
    batches = ExecBatch(exec: exec)
  }

  /// Checks that the sandbox exists and runs (`GetSandbox`), then that the mounted folder is a
  /// directory the commands can see.
  public static func connect(configuration: CoreWeaveConfiguration) async throws
    -> CoreWeaveBackend
  {
    try ExecFilesystem.checkAbsolute(configuration.remoteRoot)
    let backend = CoreWeaveBackend(client: try CoreWeaveClient(configuration: configuration))
    do {
      let sandbox = try await backend.client.getSandbox()
      guard sandbox.status.state == .running else {
        throw RemoteError(
          errno: EIO,
          "the sandbox '\(configuration.sandboxID)' is not running (\(sandbox.status.state))",
          kind: .failure)
      }
      try await backend.exec.checkMountedFolder(configuration.remoteRoot)
    } catch {
      await backend.shutdownWithoutBlocking()
      throw error
    }
    return backend
  }

  /// `StreamExec` as the exec layer's executor.
  public var commandExecutor: any ProcessExecutor { CoreWeaveExecutor(client: client) }

  public func shutdownWithoutBlocking() async { await client.shutdown() }

  public func capabilities() async -> RemoteCapabilities {
    RemoteCapabilities(
      rangedReads: true, offsetWrites: true, hardLinks: true, batchChanges: true,
      inodeNumbers: true, richAttributes: true, owners: .ids, uploadKeepsOwnerAndMode: true,
      description: "CoreWeave sandbox (gRPC, \(client.endpoint.tls ? "TLS" : "h2c"))")
  }

  private var ioTimeout: Double { client.configuration.ioTimeout }

  // MARK: reads

  /// At most `length` bytes at `offset`, checked against the size stat'ed before: a small file
  /// through `ReadFile`, a range of a larger one through `dd`. Short answers are tried once
  /// more, then EIO; they are never returned.
  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    guard length > 0 else { return [] }
    let context = "read \(path) at \(offset)"
    let sandboxPath = exec.sandboxPath(path)
    let coversFile = offset == 0 && expectedSize <= UInt64(length)
    if expectedSize <= UInt64(Self.wholeReadLimit) || coversFile,
      expectedSize <= UInt64(client.fileCap)
    {
      do {
        let whole = try await readWhole(sandboxPath, expectedSize: expectedSize, context: context)
        guard offset < UInt64(whole.count) else { return [] }
        let start = whole.startIndex + Int(offset)
        return Array(whole[start..<min(whole.endIndex, start + length)])
      } catch is CoreWeaveClient.FileTooLarge {
        // Larger than the server's cap: a ranged command below.
      }
    }
    return try await checkedRangeRead(
      context: context, offset: offset, length: length, expectedSize: expectedSize
    ) {
      let output = OutputBuffer(limit: length, context: context, reserve: length)
      let ending = try await client.streamExec(
        [
          "/bin/sh", "-c",
          // Sandbox paths are under `$SANDBOX_ROOT` where sandbox-agent serves a folder.
          "R=${SANDBOX_ROOT:-}; exec dd if=\"$R$1\" bs=1048576 iflag=skip_bytes,count_bytes skip=\"$2\" count=\"$3\" status=none",
          "sh", sandboxPath, String(offset), String(length),
        ], environment: ["LC_ALL": "C"], input: .none, deadline: client.deadline(bytes: length),
        stall: ioTimeout, context: context
      ) { try output.append($0) }
      try check(ending, context: context)
      return output.contents
    }
  }

  /// `ReadFile` of the whole file; fewer bytes than `expectedSize` is tried once more, then
  /// EIO. Throws `FileTooLarge` past the server's cap.
  private func readWhole(_ sandboxPath: String, expectedSize: UInt64, context: String)
    async throws -> Data
  {
    var content = try await client.readFile(
      sandboxPath, expectedSize: expectedSize, context: context)
    if UInt64(content.count) < expectedSize {
      content = try await client.readFile(
        sandboxPath, expectedSize: expectedSize, context: context)
      if UInt64(content.count) < expectedSize {
        throw RemoteError(
          errno: EIO, "\(context): \(content.count) bytes arrived, \(expectedSize) were expected")
      }
    }
    return content
  }

  /// The whole file into `localPath`: `ReadFile` up to the cap, else `cat` over `StreamExec`
  /// written as it arrives. Checked against `expectedSize`; a short copy is tried once more,
  /// then EIO, and the local file is left empty.
  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    let context = "download \(path)"
    let descriptor = try await LocalFile.create(localPath)
    do {
      let count = try await download(
        exec.sandboxPath(path), expectedSize: expectedSize, into: descriptor, localPath: localPath,
        context: context)
      await LocalFile.close(descriptor)
      return count
    } catch {
      await LocalFile.truncate(descriptor)
      await LocalFile.close(descriptor)
      throw error
    }
  }

  private func download(
    _ sandboxPath: String, expectedSize: UInt64, into descriptor: Int32, localPath: String,
    context: String
  ) async throws -> UInt64 {
    if expectedSize <= UInt64(client.fileCap) {
      do {
        let whole = try await readWhole(sandboxPath, expectedSize: expectedSize, context: context)
        try await LocalFile.append([whole], to: descriptor, path: localPath)
        return UInt64(whole.count)
      } catch is CoreWeaveClient.FileTooLarge {
        // Streamed below.
      }
    }
    var written: UInt64 = 0
    for attempt in 0..<2 {
      if attempt > 0 { await LocalFile.truncate(descriptor) }
      let sink = FileSink(descriptor: descriptor, path: localPath)
      let ending = try await client.streamExec(
        ["/bin/sh", "-c", "R=${SANDBOX_ROOT:-}; exec cat -- \"$R$1\"", "sh", sandboxPath],
        environment: ["LC_ALL": "C"], input: .none,
        deadline: client.deadline(bytes: Int(min(expectedSize, 1 << 40))), stall: ioTimeout,
        context: context
      ) { try await sink.append($0) }
      written = try await sink.finish()
      try check(ending, context: context)
      if written >= expectedSize { return written }
    }
    throw RemoteError(
      errno: EIO, "\(context): \(written) bytes arrived, \(expectedSize) were expected")
  }

  // MARK: writes

  /// The local file to a temporary name beside the target (`WriteFile` up to the cap, else
  /// `cat` from `StreamExec`'s stdin), then one command checks its size and renames it over the
  /// target (`ExecFilesystem.upload`). A cut upload leaves the old content.
  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    let context = "upload \(path)"
    let (descriptor, size) = try openUploadSource(localPath, context: context)
    defer { if descriptor >= 0 { close(descriptor) } }
    return try await exec.upload(path, context: context) { temporary in
      try await push(descriptor: descriptor, size: size, to: temporary, context: context)
      return UInt64(size)
    }
  }

  /// `size` bytes of `descriptor` (-1: none) to a sandbox path, created or truncated.
  func push(descriptor: Int32, size: Int64, to sandboxPath: String, context: String) async throws {
    if size <= Int64(client.fileCap) {
      let content =
        descriptor < 0 ? Data() : try await LocalFile.contents(of: descriptor, size: size)
      do {
        try await client.writeFile(sandboxPath, content: content, context: context)
        return
      } catch is CoreWeaveClient.FileTooLarge {
        // The server's cap is lower: streamed below.
      }
    }
    try await pushStreamed(
      .file(descriptor: descriptor, size: size), size: Int(size), to: sandboxPath,
      context: context)
  }

  /// `cat > PATH` with the bytes on stdin, in 1 MiB frames. (The caller checks the size.)
  func pushStreamed(
    _ input: CoreWeaveClient.Input, size: Int, to sandboxPath: String, makingParents: Bool = false,
    context: String
  ) async throws {
    let parents = makingParents ? "mkdir -p -- \"$R$(dirname -- \"$1\")\" && " : ""
    let ending = try await client.streamExec(
      ["/bin/sh", "-c", "R=${SANDBOX_ROOT:-}; \(parents)exec cat > \"$R$1\"", "sh", sandboxPath],
      environment: ["LC_ALL": "C"], input: input, deadline: client.deadline(bytes: size),
      stall: ioTimeout, context: context
    ) { _ in }
    try check(ending, context: context)
  }

  /// Small changes in place through one command (`ExecFilesystem.writeRanges`).
  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await exec.writeRanges(
      path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
  }

  // MARK: helpers

  /// A command that did not exit 0: the errno its stderr names (coreutils' words), else EIO.
  private func check(_ ending: CoreWeaveClient.Ending, context: String) throws {
    guard ending.exitCode != 0 else { return }
    let message = String(decoding: ending.stderr.prefix(500), as: UTF8.self)
    let errno = ending.exitCode == nil ? EIO : ExecOutput.errno(describedBy: message)
    throw RemoteError(
      errno: errno,
      "\(context): \(message.isEmpty ? ending.status : message.trimmingCharacters(in: .whitespacesAndNewlines))"
    )
  }
}
