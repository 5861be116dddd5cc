import Backend
import CCurl
import ExecLayer
import Foundation
import HTTPTransport
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A Vercel sandbox as a `RemoteFilesystem`. Vercel's API has whole-file `fs/read` and
/// `fs/write` (a gzip'ed tar) and commands; like Vercel's own SDK, everything else (stat,
/// list, remove, rename, metadata) runs as commands through the exec layer. Reads of ranges
/// (the staging area's gap fills) are `dd` through a command, base64 over its text output.
public final class VercelBackend: ExecMetadataBackend {
  public let exec: ExecFilesystem
  let client: VercelClient
  /// Ranged reads through commands.
  private let commands: ExecOnlyFilesystem
  private let remoteRoot: String
  private let temporaryFolder: String
  public let batches: ExecBatch

  private init(client: VercelClient) {
    self.client = client
    var root = client.configuration.remoteRoot
    while root.count > 1, root.hasSuffix("/") { root.removeLast() }
    remoteRoot = root
    commands = ExecOnlyFilesystem(executor: VercelExecutor(client: client), rootFolder: root)
    exec = commands.exec
    batches = ExecBatch(exec: commands.exec)
    temporaryFolder = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
  }

  /// Finds the sandbox's session through the control plane and checks that the mounted folder
  /// is a directory the commands can see.
  public static func connect(configuration: VercelConfiguration) async throws -> VercelBackend {
    try ExecFilesystem.checkAbsolute(configuration.remoteRoot)
    let backend = VercelBackend(client: try VercelClient(configuration: configuration))
    do {
      try await backend.client.lookUpSession()
      try await backend.exec.checkMountedFolder(configuration.remoteRoot)
    } catch {
      await backend.shutdownWithoutBlocking()
      throw error
    }
    return backend
  }

  /// Vercel's `cmd` as the exec layer's executor (an `ExecOnlyFilesystem` over it is the whole
  /// backend through commands: the tests' proof of the stdin and base64 paths).
  public var commandExecutor: any ProcessExecutor { VercelExecutor(client: client) }

  public var transferThread: any TaskExecutor { client.transferThread }
  public func shutdown() { client.shutdown() }
  public func shutdownWithoutBlocking() async { await client.shutdownWithoutBlocking() }

  public func capabilities() async -> RemoteCapabilities {
    RemoteCapabilities(
      rangedReads: false, offsetWrites: true, hardLinks: true, batchChanges: true,
      inodeNumbers: true,
      richAttributes: true,
      owners: .ids, uploadKeepsOwnerAndMode: true, description: "Vercel sandbox")
  }

  /// The sandbox's path of a mount path.
  func sandboxPath(_ path: String) -> String {
    if path == "/" || path.isEmpty { return remoteRoot }
    return remoteRoot == "/" ? path : remoteRoot + path
  }

  // MARK: data

  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    try await commands.read(path, offset: offset, length: length, expectedSize: expectedSize)
  }

  private struct PathBody: Encodable {
    var path: String
  }

  /// `fs/read` streamed into the local file. A body shorter than `expectedSize` (the file
  /// shrank, or the stream broke off) is tried once more, then EIO; the local file is then empty.
  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    let body = try Array(VercelClient.encoder.encode(PathBody(path: sandboxPath(path))))
    return try await client.download(
      "fs/read", to: localPath, expectedSize: expectedSize, context: "download \(path)"
    ) { url in
      HTTPRequest(
        method: .post, url: url,
        headers: ["Content-Type: application/json", "Accept: application/octet-stream"],
        body: .bytes(body))
    }
  }

  /// `fs/write` of a one-entry tar to `.NAME.sandbox-mount-XXXX` beside the target, then one
  /// command checks its size and renames it over the target with the target's owner and mode
  /// (a target with other hard links is copied into), and sets the folder's mtime back. A cut
  /// upload leaves the old content; its temporary file is removed.
  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    let context = "upload \(path)"
    let (descriptor, size) = try openUploadSource(localPath, context: context)
    defer { if descriptor >= 0 { close(descriptor) } }
    let folderPath = temporaryFolder
    // (`fs/write` makes missing parents, which upload(2)'s contract forbids: checked first.)
    return try await exec.upload(path, context: context) { temporary in
      let entryName = String(temporary.drop { $0 == "/" })
      let archive = try await onOwnThread {
        try TarUpload.make(
          name: entryName, mode: 0o644, source: descriptor, size: size,
          temporaryFolder: folderPath)
      }
      try await post(archive, context: context)
      return UInt64(size)
    }
  }

  /// Small changes in place through one command (`ExecFilesystem.patch`: a pwrite or an append
  /// to a big file moves its bytes, not the file); more than `patchLimit` bytes, or a file
  /// written from scratch, is EOPNOTSUPP and goes as a whole upload.
  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    try await exec.writeRanges(
      path, from: localPath, ranges: ranges, truncateFirst: truncateFirst, size: size)
  }

  /// `fs/write` of a gzip'ed tar whose entries are relative to `/`.
  func post(_ archive: TarUpload, context: String) async throws {
    _ = try await client.send("fs/write", idempotent: true, context: context) { url in
      HTTPRequest(
        method: .post, url: url,
        headers: ["Content-Type: application/gzip", "x-cwd: /", "Accept: application/json"],
        body: archive.body(), bulk: true)
    }
  }

  /// Builds an archive off the cooperative pool.
  func archive(_ entries: [TarUpload.Entry]) async throws -> TarUpload {
    let folder = temporaryFolder
    return try await onOwnThread { try TarUpload.make(entries, temporaryFolder: folder) }
  }
}

extension TarUpload {
  /// The archive as a request body, from its start.
  func body() -> RequestBody {
    .stream(FileRangeBodySource(descriptor: descriptor, offset: 0, length: length))
  }
}
