import Backend
import ExecLayer
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Whole-file uploads (atomic: a cut upload leaves the old content) and writes of changed ranges
/// through envd's `/files` and processes, which both envd backends use.
extension EnvdConnection {
  /// Replaces the file with the local file's content, streamed (gzip-compressed when
  /// `compressUploads` and it pays off), then checks the remote size against what was sent: a
  /// mismatch is retried once, then EIO.
  ///
  /// With the extension: the replace route (temporary file, fsync, size check, rename, the
  /// target's owner and mode). On stock envd: `POST /files` to a temporary name in the same
  /// folder, a Stat of it, then Move over the target. envd creates missing parents, so the
  /// parent is checked first (ENOENT/ENOTDIR).
  func upload(
    _ path: String, from localPath: String?,
    once: (_ descriptor: Int32, _ size: Int64) async throws -> RemoteEntryState?
  ) async throws -> RemoteEntryState? {
    let context = "upload \(path)"
    if path == "/" { throw RemoteError(errno: EISDIR, "\(context): the mount root is a directory") }

    var descriptor: Int32 = -1
    defer { if descriptor >= 0 { close(descriptor) } }
    var size: Int64 = 0
    if let localPath {
      descriptor = open(localPath, O_RDONLY | O_CLOEXEC)
      var info = Glibc.stat()
      guard descriptor >= 0, fstat(descriptor, &info) == 0 else {
        throw LocalError(errno: errno, "open for \(context)", localPath)
      }
      size = Int64(info.st_size)
    }

    var attempt = 0
    while true {
      attempt += 1
      let answer = try await once(descriptor, size)
      // The write-side twin of the truncation check.
      guard let answer, answer.attributes.size != UInt64(size) else { return answer }
      let mismatch =
        "\(context): the sandbox holds \(answer.attributes.size) bytes, \(size) were sent"
      guard attempt < 2 else { throw RemoteError(errno: EIO, mismatch) }
      logger.warning("\(mismatch); sending it again")
    }
  }

  /// Stock envd: upload to `.NAME.sandbox-mount-XXXX` next to the target, then one process
  /// checks its size and renames it over the target with the target's mode (a target with
  /// other hard links is copied into instead), and sets the directory's mtime back. A cut
  /// upload leaves only the temporary file, which the process or a later upload removes.
  func stockUpload(_ path: String, descriptor: Int32, size: Int64) async throws
    -> RemoteEntryState
  {
    let context = "upload \(path)"
    let parent = RemotePath.parent(of: path)
    // Also the check that the parent exists: envd's upload would make it.
    guard let directory = try await statIfPresent(parent, context: context) else {
      throw RemoteError(errno: ENOENT, "\(context): \(parent) does not exist")
    }
    guard directory.attributes.type == .directory || directory.leadsToDirectory else {
      throw RemoteError(errno: ENOTDIR, "\(context): \(parent) is not a directory")
    }
    let name = String(RemotePath.name(of: path).prefix(200))
    let temporary = RemotePath.join(
      parent, ".\(name).sandbox-mount-\(String(UInt64.random(in: 0..<(1 << 40)), radix: 36))")
    do {
      try await postFiles(to: temporary, descriptor: descriptor, size: size, context: context)
      let replace = ExecScript.Step.replace(
        from: client.protocolPath(temporary), size: UInt64(size),
        directoryTime: directory.attributes.modificationTime)
      let attributes = try await runFallback(path, [replace, .stat], context: context)
      knownDirectories.remember(parent)
      return RemoteEntryState(attributes)
    } catch {
      try? await remove(temporary, context: context)
      throw error
    }
  }

  /// Ranges without the extension's route: a whole file written from scratch (`truncateFirst`
  /// 0, one range from 0) is envd's upload, which writes in place; other ranges go through one
  /// process, up to `ExecFilesystem.patchLimit` bytes in all; more is EOPNOTSUPP, and the caller uploads
  /// the whole file instead.
  func stockWriteRanges(
    _ path: String, descriptor: Int32, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    if truncateFirst == 0 && ranges.allSatisfy({ $0 == 0..<size }) {
      try await stockWriteInPlace(path, descriptor: descriptor, size: Int64(size))
      return nil
    }
    return try await exec.patch(
      path, descriptor: descriptor, ranges: ranges, truncateFirst: truncateFirst, size: size)
  }

  /// Opens the local file for a write of ranges.
  func withLocalFile<Result>(
    _ localPath: String, context: String, _ body: (Int32) async throws -> Result
  ) async throws -> Result {
    let descriptor = open(localPath, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw LocalError(errno: errno, "open for \(context)", localPath)
    }
    defer { close(descriptor) }
    return try await body(descriptor)
  }

  /// envd's `POST /files` to the path itself: it truncates and writes the file in place.
  func stockWriteInPlace(_ path: String, descriptor: Int32, size: Int64) async throws {
    let context = "write \(path)"
    try await requireDirectory(RemotePath.parent(of: path), for: context)
    let before = try await statIfPresent(path, context: context)?.attributes
    try await postFiles(
      to: path, descriptor: size > 0 ? descriptor : -1, size: size, context: context)
    // envd's upload chowns an existing file to its user (and so drops setuid/setgid): a write
    // leaves both alone on Linux, so they are put back.
    guard let before else { return }
    let after = try await stat(path, context: context).attributes
    guard
      after.owner != before.owner || after.group != before.group
        || after.permissions != before.permissions
    else { return }
    let owner = await ownerIds.resolve(before)
    var changes = RemoteAttributeChanges(mode: before.permissions)
    if after.owner != before.owner { changes.uid = owner.uid }
    if after.group != before.group { changes.gid = owner.gid }
    // As envd's user: the caller's rights do not cover a chown back.
    _ = try await CallerIdentity.$current.withValue(nil) {
      try await runFallback(path, ExecScript.steps(for: changes), context: context)
    }
  }

  /// envd's `POST /files` of the local file (-1: empty) to `path`.
  func postFiles(to path: String, descriptor: Int32, size: Int64, context: String)
    async throws
  {
    let (headers, body) = try uploadBody(descriptor: descriptor, size: size)
    let response = try await client.files(
      HTTPRequest(
        method: .post, url: client.filesURL(path), headers: headers, body: body,
        sink: .memory(expected: 0, limit: 1 << 20), bulk: size > 0))
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.isSuccessStatus else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
  }

  /// A body from the start of `descriptor` (-1: empty), gzip-compressed when it pays off.
  func uploadBody(descriptor: Int32, size: Int64) throws -> ([String], RequestBody) {
    var headers = ["Content-Type: application/octet-stream"]
    guard descriptor >= 0 else { return (headers, .none) }
    if size <= RequestBody.inMemoryLimit {
      return (headers, .fileRange(descriptor: descriptor, offset: 0, length: size))
    }
    guard lseek(descriptor, 0, SEEK_SET) == 0 else {
      throw LocalError(errno: errno, "rewind", "the local file (fd \(descriptor))")
    }
    if client.configuration.compressUploads,
      GzipFileBodySource.paysOff(descriptor: descriptor, size: size)
    {
      if let source = try? GzipFileBodySource(descriptor: descriptor) {
        headers.append("Content-Encoding: gzip")
        return (headers, .stream(source))
      }
    }
    return (headers, .stream(FileBodySource(descriptor: descriptor, length: size)))
  }
}
