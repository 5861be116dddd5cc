import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /sandboxagent/v1/files?path=…&offset=N[&size=S]`: writes the body into an existing
/// regular file at `offset`, in place (no truncation, no chown, same inode), after first setting
/// its size to `S` if given. Errors are the extension's Connect error JSON (errno first).
struct OffsetWrite {
  let services: AgentServices
  /// Bytes gathered from the socket before one hop to the thread pool.
  static let batchSize = 512 * 1024

  struct Answer: Encodable {
    var attr: ExtensionAttr
    /// A replace renamed into the directory, which changed it: its attr after that.
    var parent: ExtensionAttr?
    var written: String
  }

  /// What a request asks for, from its query and Content-Encoding.
  struct Parameters: Sendable {
    var path: ExtensionPath
    var offset: Int64
    var size: Int64?
    var replace: Bool
    var length: Int64?
    var gzip: Bool
    /// `Sandbox-Agent-Caller`: who writes (docs/agent-extension.md §5).
    var caller: ExtensionCaller?

    init(query: String?, contentEncoding: String?, caller: String?) throws(ErrnoError) {
      let query = RawQuery(query)
      guard let rawPath = query["path"] else { throw ErrnoError(EINVAL, "path is required") }
      path = try ExtensionPath(rawPath)
      offset = try query.integer("offset") ?? 0
      size = try query.integer("size")
      replace = try query.flag("replace")
      length = try query.integer("length")
      if replace && (offset != 0 || size != nil) {
        throw ErrnoError(EINVAL, "replace takes neither offset nor size")
      }
      gzip = try OffsetWrite.isGzip(contentEncoding)
      self.caller = try caller.map { (text) throws(ErrnoError) in try ExtensionCaller(header: text)
      }
    }

    /// No temporary file, fsync, truncate (which may free much of a disk), gzip or switch of
    /// credentials (only on the thread pool): see `answer(_:)`.
    var isSmallEditInPlace: Bool {
      !replace && size == nil && !gzip && (caller == nil || !CallerCredentials.honoured)
    }

    func open(in jail: RootJail) throws(ErrnoError) -> OffsetWriteTarget {
      try OffsetWriteTarget(
        path: path, jail: jail, offset: offset, size: size, replace: replace, gzip: gzip,
        caller: caller)
    }

    func finish(_ target: OffsetWriteTarget) throws -> UnaryAnswer {
      let attr = try target.finish(expectedLength: length)
      let answer = Answer(
        attr: attr, parent: target.directoryAttr(), written: String(target.written))
      return UnaryAnswer(
        status: .ok, body: ByteBuffer(bytes: try protocolJSONEncoder().encode(answer)))
    }
  }

  func respond(to request: Request) async -> Response {
    var started: OffsetWriteTarget?
    let answer: UnaryAnswer
    do {
      _ = try services.rpcUser(for: request)
      let parameters = try Parameters(
        query: request.uri.query, contentEncoding: request.headers[.contentEncoding],
        caller: request.headers[callerHeader])
      let jail = services.jail
      let target = try await services.blocking { try parameters.open(in: jail) }
      started = target
      try await pump(
        request.body, into: target, counted: request.headers[.contentLength] != nil)
      answer = try await services.blocking { try parameters.finish(target) }
    } catch {
      // A replace that did not finish leaves the target as it was: drop the temporary file.
      if let started { try? await services.blocking { started.abandon() } }
      answer = failure(error)
    }
    return Response(
      status: answer.status, headers: [.contentType: "application/json"],
      body: .init(byteBuffer: answer.body))
  }

  /// A request with its (small) body whole: all of it in one trip to the thread pool, where
  /// the streaming route takes three.
  func answer(_ request: InlineRequest) -> UnaryWork {
    let parameters: Parameters
    do {
      _ = try services.users.rpcUser(authorization: request.authorization)
      parameters = try Parameters(
        query: request.query, contentEncoding: request.contentEncoding, caller: request.caller)
    } catch {
      return .answered(failure(error))
    }
    let jail = services.jail
    let write: @Sendable () -> UnaryAnswer = {
      var started: OffsetWriteTarget?
      do {
        let target = try parameters.open(in: jail)
        started = target
        try target.consume([request.body])
        return try parameters.finish(target)
      } catch {
        started?.abandon()
        return failure(error)
      }
    }
    // An edit in place is an open and a pwrite into the page cache, as cheap as a Create:
    // the hop to the thread pool and back would cost more than the write (two thread wakes).
    return parameters.isSmallEditInPlace ? .answered(write()) : .offloaded(write)
  }

  private func failure(_ error: any Error) -> UnaryAnswer {
    let connectError: ConnectError
    switch error {
    case let error as ErrnoError:
      if error.code == EIO { services.logger.warning("offset write: \(error)") }
      connectError = error.connectError
    case let error as ConnectError:
      connectError = error
    default:
      connectError = ErrnoError(EIO, "\(error)").connectError
    }
    return UnaryAnswer(
      status: .init(code: connectError.code.httpStatus),
      body: ByteBuffer(bytes: connectError.protocolJSON))
  }

  fileprivate static func isGzip(_ header: String?) throws(ErrnoError) -> Bool {
    let name = HeaderParameters(header ?? "").value
    if name.isEmpty || name == "identity" { return false }
    if name == "gzip" { return true }
    throw ErrnoError(EINVAL, "unsupported Content-Encoding \(name): supported are gzip, identity")
  }

  /// Moves the body to the file in batches; a body cut short is EIO.
  private func pump(_ body: RequestBody, into target: OffsetWriteTarget, counted: Bool)
    async throws
  {
    var iterator = body.makeAsyncIterator()
    var ended = false
    while !ended {
      var batch: [ByteBuffer] = []
      var batchBytes = 0
      do {
        while batchBytes < Self.batchSize, let chunk = try await iterator.next() {
          batch.append(chunk)
          batchBytes += chunk.readableBytes
          if !counted { services.counters.countReceived(chunk.readableBytes) }
        }
      } catch {
        throw ErrnoError(EIO, "request body: \(error)")
      }
      ended = batchBytes < Self.batchSize
      if !batch.isEmpty {
        let chunks = batch
        try await services.blocking { try target.consume(chunks) }
      }
    }
  }
}

/// The file an offset write goes to. Used by one request at a time, handed between the event
/// loop and the thread pool, hence `@unchecked`.
///
/// A replace writes a temporary file next to the target and renames it over the target only
/// once the whole body is on disk, synced and of the announced length, with the target's owner
/// and mode: a reader in the sandbox sees the old content or the new, and a cut upload leaves
/// the old. A target with other hard links is rewritten in place instead, so they keep sharing
/// it (not atomic).
final class OffsetWriteTarget: @unchecked Sendable {
  private let file: FileDescriptor
  private let path: ExtensionPath
  private let gzip: GzipDecompressor?
  private var position: Int64
  private(set) var written: Int64 = 0
  /// The directory and names of a replace through a temporary file.
  private let replacement: (directory: FileDescriptor, temporary: TemporaryFile, name: [CChar])?
  /// The directory's mtime before the temporary file was made, and right after: writing a file
  /// leaves its directory's mtime alone on Linux, so a replace puts it back, unless something
  /// else changed the directory meanwhile.
  private var directoryTimes: (original: timespec, withTemporary: timespec)?
  private var finished = false
  /// Who writes: the open and every write run with these credentials (a write by anyone but
  /// root clears setuid, as on Linux); a replace's temporary file and rename are the agent's.
  private let caller: ExtensionCaller?

  init(
    path: ExtensionPath, jail: RootJail, offset: Int64, size: Int64?, replace: Bool = false,
    gzip: Bool, caller: ExtensionCaller? = nil
  ) throws(ErrnoError) {
    self.path = path
    self.position = offset
    self.gzip = gzip ? GzipDecompressor() : nil
    self.caller = CallerCredentials.honoured ? caller : nil
    let (entry, handle) = try CallerCredentials.perform(as: caller) {
      () throws(ErrnoError) -> (ResolvedEntry, FileDescriptor) in
      let entry = try ResolvedEntry(path, in: jail)
      return (entry, try entry.openPath())
    }
    var info = stat()
    try checked(fstat(handle.raw, &info), path.description)
    if info.isSymlink { throw ErrnoError(ELOOP, path.description) }
    if info.isDirectory { throw ErrnoError(EISDIR, path.description) }
    guard info.isRegular else { throw ErrnoError(EINVAL, "not a regular file: \(path)") }
    if replace && info.st_nlink <= 1 {
      // The caller must be allowed to write the file it replaces.
      if caller != nil {
        try CallerCredentials.perform(as: caller) { () throws(ErrnoError) in
          _ = try reopen(handle, flags: O_WRONLY | O_NONBLOCK, detail: path.description)
        }
      }
      let original = Self.modificationTime(of: entry.parent)
      let temporary = try TemporaryFile(
        next: entry, owner: (info.st_uid, info.st_gid), mode: info.st_mode & 0o7777)
      file = temporary.descriptor
      replacement = (entry.parent, temporary, entry.name)
      if let original, let withTemporary = Self.modificationTime(of: entry.parent) {
        directoryTimes = (original, withTemporary)
      }
      return
    }
    replacement = nil
    file = try CallerCredentials.perform(as: caller) { () throws(ErrnoError) in
      let file = try reopen(handle, flags: O_WRONLY, detail: path.description)
      if let size = replace ? 0 : size {
        try checked(ftruncate(file.raw, off_t(size)), path.description)
      }
      return file
    }
  }

  /// The directory a replace renamed into; nil for writes in place, which leave it alone.
  func directoryAttr() -> ExtensionAttr? {
    guard let replacement else { return nil }
    var info = stat()
    guard fstat(replacement.directory.raw, &info) == 0 else { return nil }
    return ExtensionAttr(info: info)
  }

  /// Drops the temporary file of a replace that did not finish.
  func abandon() {
    guard let replacement, !finished else { return }
    let unchanged = directoryIsUnchanged()
    replacement.temporary.discard(in: replacement.directory)
    if unchanged { restoreDirectoryTime() }
  }

  private static func modificationTime(of directory: FileDescriptor) -> timespec? {
    var info = stat()
    return fstat(directory.raw, &info) == 0 ? info.st_mtim : nil
  }

  /// Whether the directory's mtime is still the one the temporary file gave it.
  private func directoryIsUnchanged() -> Bool {
    guard let directoryTimes, let replacement,
      let now = Self.modificationTime(of: replacement.directory)
    else { return false }
    return now.tv_sec == directoryTimes.withTemporary.tv_sec
      && now.tv_nsec == directoryTimes.withTemporary.tv_nsec
  }

  private func restoreDirectoryTime() {
    guard let directoryTimes, let replacement else { return }
    var times = [timespec(tv_sec: 0, tv_nsec: LinuxExtras.utimeOmit), directoryTimes.original]
    _ = utimensat(AT_FDCWD, procPath(replacement.directory), &times, 0)
  }

  func consume(_ chunks: [ByteBuffer]) throws(ErrnoError) {
    try CallerCredentials.perform(as: caller) { () throws(ErrnoError) in
      try consumeAsWriter(chunks)
    }
  }

  private func consumeAsWriter(_ chunks: [ByteBuffer]) throws(ErrnoError) {
    for chunk in chunks {
      guard let gzip else {
        try write(chunk)
        continue
      }
      do {
        try gzip.decompress(chunk) { piece in try write(piece) }
      } catch let error as ErrnoError {
        throw error
      } catch {
        throw ErrnoError(EINVAL, "request body: \(error)")
      }
    }
  }

  /// Ends the body and answers the file's attr after the write. `expectedLength`: the bytes
  /// the client meant to send; fewer (a cut upload) is EIO, and a replace keeps the old file.
  func finish(expectedLength: Int64? = nil) throws(ErrnoError) -> ExtensionAttr {
    do {
      try gzip?.finish()
    } catch {
      throw ErrnoError(EINVAL, "request body: gzip: \(error)")
    }
    if let expectedLength, expectedLength != written {
      throw ErrnoError(EIO, "\(path): \(written) bytes arrived, \(expectedLength) announced")
    }
    if let replacement {
      try checked(fsync(file.raw), path.description)
      let unchanged = directoryIsUnchanged()
      try replacement.temporary.place(
        in: replacement.directory, as: replacement.name, path: path.description,
        targetExists: true)
      finished = true
      if unchanged { restoreDirectoryTime() }
    }
    var info = stat()
    try checked(fstat(file.raw, &info), path.description)
    return ExtensionAttr(info: info)
  }

  private func write(_ buffer: ByteBuffer) throws(ErrnoError) {
    let (count, failure) = buffer.withUnsafeReadableBytes { file.writeAll($0, at: position) }
    position += Int64(count)
    written += Int64(count)
    if failure != 0 { throw ErrnoError(failure, path.description) }
  }
}

/// `uid=N;gid=N;groups=N,N`: the caller of an offset write.
let callerHeader = HTTPField.Name("Sandbox-Agent-Caller")!

/// A query string whose values are percent-decoded to raw bytes (`%FF` stays one byte), so a
/// path need not be UTF-8. `+` is a space and the first value wins, as in Go's `ParseQuery`.
struct RawQuery {
  private var values: [String: [UInt8]] = [:]

  init(_ query: String?) {
    guard let query else { return }
    for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
      let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      guard let keyBytes = Self.unescape(parts[0]) else { continue }
      let key = String(decoding: keyBytes, as: UTF8.self)
      guard values[key] == nil, let value = parts.count > 1 ? Self.unescape(parts[1]) : [] else {
        continue
      }
      values[key] = value
    }
  }

  subscript(_ key: String) -> [UInt8]? { values[key] }

  /// `1` or `true` is set; absent, `0` or `false` is not; anything else is EINVAL.
  func flag(_ key: String) throws(ErrnoError) -> Bool {
    guard let bytes = values[key] else { return false }
    switch String(decoding: bytes, as: UTF8.self) {
    case "1", "true": return true
    case "0", "false", "": return false
    default: throw ErrnoError(EINVAL, "\(key) must be 1 or 0")
    }
  }

  /// A non-negative decimal integer; anything else is EINVAL.
  func integer(_ key: String) throws(ErrnoError) -> Int64? {
    guard let bytes = values[key] else { return nil }
    guard let value = Int64(String(decoding: bytes, as: UTF8.self)), value >= 0 else {
      throw ErrnoError(EINVAL, "\(key) must be a non-negative integer")
    }
    return value
  }

  static func unescape(_ text: Substring) -> [UInt8]? {
    var bytes: [UInt8] = []
    var input = Array(text.utf8)[...]
    while let byte = input.popFirst() {
      switch byte {
      case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
      case UInt8(ascii: "%"):
        let digits = input.prefix(2)
        guard digits.count == 2,
          digits.allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") }),
          let value = UInt8(String(decoding: digits, as: UTF8.self), radix: 16)
        else { return nil }
        bytes.append(value)
        input = input.dropFirst(2)
      default: bytes.append(byte)
      }
    }
    return bytes
  }
}
