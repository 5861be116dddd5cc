import Backend
import CCurl
import ExecLayer
import Foundation
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A LangSmith sandbox ("box") as a `RemoteFilesystem`. Data goes through the dataplane's file
/// routes: ranged `GET /download` straight into the block cache, `POST /upload` (multipart,
/// streamed from the local file) to a temporary name that one command renames over the
/// target. Metadata goes through the exec layer over the SSE command stream: `stat` and `find`
/// give type, mode, owner, links and nanosecond times in one command, which `HEAD /download`
/// (size and a whole-second mtime, files only) and `POST /glob` (no modes) cannot.
public final class LangSmithBackend: ExecMetadataBackend {
  public let exec: ExecFilesystem
  let client: LangSmithClient
  private let remoteRoot: String

  public let batches: ExecBatch
  let temporaryFolder = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"

  private init(client: LangSmithClient) {
    self.client = client
    var root = client.configuration.remoteRoot
    while root.count > 1, root.hasSuffix("/") { root.removeLast() }
    remoteRoot = root
    let prefix = root == "/" ? "" : root
    exec = ExecFilesystem(executor: Self.executor(client)) { path in
      path == "/" || path.isEmpty ? (prefix.isEmpty ? "/" : prefix) : prefix + path
    }
    batches = ExecBatch(exec: exec)
  }

  /// Finds the box's dataplane through the control plane and checks that the mounted folder is
  /// a directory the commands can see.
  public static func connect(configuration: LangSmithConfiguration) async throws
    -> LangSmithBackend
  {
    try ExecFilesystem.checkAbsolute(configuration.remoteRoot)
    let backend = LangSmithBackend(client: try LangSmithClient(configuration: configuration))
    do {
      try await backend.client.lookUpBox()
      try await backend.exec.checkMountedFolder(configuration.remoteRoot)
    } catch {
      await backend.shutdownWithoutBlocking()
      throw error
    }
    return backend
  }

  /// The command stream the configuration picks, as the exec layer's executor.
  public var commandExecutor: any ProcessExecutor { Self.executor(client) }

  private static func executor(_ client: LangSmithClient) -> any ProcessExecutor {
    switch client.configuration.commandStream {
    case .webSocket: LangSmithWebSocketExecutor(client: client)
    case .serverSentEvents: LangSmithSSEExecutor(client: client)
    }
  }

  public var transferThread: any TaskExecutor { client.transferThread }
  public func shutdown() { client.http.loop.shutdown() }
  public func shutdownWithoutBlocking() async { await client.http.loop.shutdownWithoutBlocking() }

  public func capabilities() async -> RemoteCapabilities {
    RemoteCapabilities(
      rangedReads: true, offsetWrites: true, hardLinks: true, batchChanges: true,
      inodeNumbers: true,
      richAttributes: true,
      owners: .ids, uploadKeepsOwnerAndMode: true,
      description:
        "LangSmith sandbox (commands over \(client.configuration.commandStream.rawValue))")
  }

  // MARK: data

  /// `GET /download` with `Range`: at most `length` bytes at `offset`, checked against the size
  /// stat'ed before. A short answer is tried once more, then EIO; it is never returned.
  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    guard length > 0 else { return [] }
    let context = "read \(path) at \(offset)"
    let url = client.dataplaneURL("download", path: exec.sandboxPath(path))
    let last = offset + UInt64(length) - 1
    return try await checkedRangeRead(
      context: context, offset: offset, length: length, expectedSize: expectedSize
    ) {
      let response = try await client.http.send(idempotent: true) {
        HTTPRequest(
          method: .get, url: url, headers: ["Accept: application/octet-stream"],
          range: "\(offset)-\(last)", sink: .memory(expected: length, limit: length),
          deadline: client.configuration.requestTimeout)
      }
      // Past the end of the file: no bytes, as pread(2) gives.
      if response.status == 416 && response.curlCode == 0 { return [] }
      // A body cut short is a short answer for the check, not reported as a broken link.
      let cut = response.isSuccessStatus && response.curlCode == CURLE_PARTIAL_FILE.rawValue
      if !response.limitReached && !cut { try client.check(response, context: context) }
      guard response.status == 206 || offset == 0 else {
        throw RemoteError(
          errno: EIO, "\(context): the server ignored the range (\(response.status))")
      }
      return Array(response.body.prefix(length))
    }
  }

  /// `GET /download` streamed into the local file, checked against `expectedSize`.
  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    let context = "download \(path)"
    let url = client.dataplaneURL("download", path: exec.sandboxPath(path))
    return try await client.http.download(
      to: localPath, expectedSize: expectedSize, context: context,
      check: { try self.client.check($0, context: context) }
    ) {
      HTTPRequest(method: .get, url: url, headers: ["Accept: application/octet-stream"])
    }
  }

  /// `POST /upload` of the local file (multipart, streamed) to a temporary name beside the
  /// target, then renamed over it by one command (`ExecFilesystem.upload`). A cut upload
  /// leaves the old content.
  @discardableResult
  /// Small changes in place through one command; the command is one shell line (one argv
  /// string, at most 128 KiB), so a patch stays under 64 KiB.
  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await exec.writeRanges(
      path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size,
      limit: 64 << 10)
  }

  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    let context = "upload \(path)"
    let (descriptor, size) = try openUploadSource(localPath, context: context)
    defer { if descriptor >= 0 { close(descriptor) } }
    return try await exec.upload(path, context: context) { temporary in
      try await post(descriptor: descriptor, size: size, to: temporary, context: context)
      return UInt64(size)
    }
  }

  /// `POST /upload` of `size` bytes of `descriptor` (multipart, streamed) to a sandbox path.
  func post(descriptor: Int32, size: Int64, to sandboxPath: String, context: String) async throws {
    let url = client.dataplaneURL("upload", path: sandboxPath)
    let response = try await client.http.send(idempotent: true) {
      let form = MultipartFileBody(
        field: "file", fileName: "file", descriptor: descriptor, size: size)
      return HTTPRequest(
        method: .post, url: url,
        headers: ["Content-Type: \(form.contentType)", "Accept: application/json"],
        body: .stream(form), bulk: true)
    }
    try client.check(response, context: context)
  }
}
