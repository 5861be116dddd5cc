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
    var written: String
  }

  func respond(to request: Request) async -> Response {
    do {
      _ = try services.rpcUser(for: request)
      let query = RawQuery(request.uri.query)
      guard let rawPath = query["path"] else { throw ErrnoError(EINVAL, "path is required") }
      let path = try ExtensionPath(rawPath)
      let offset = try query.integer("offset") ?? 0
      let size = try query.integer("size")
      let gzip = try Self.isGzip(request.headers[.contentEncoding])
      let jail = services.jail
      let target = try await services.blocking {
        try OffsetWriteTarget(path: path, jail: jail, offset: offset, size: size, gzip: gzip)
      }
      try await pump(request.body, into: target)
      let answer = try await services.blocking {
        Answer(attr: try target.finish(), written: String(target.written))
      }
      return .json(try protocolJSONEncoder().encode(answer))
    } catch let error as ErrnoError {
      if error.code == EIO { services.logger.warning("offset write: \(error)") }
      return .connectError(error.connectError)
    } catch let error as ConnectError {
      return .connectError(error)
    } catch {
      return .connectError(ErrnoError(EIO, "\(error)").connectError)
    }
  }

  private static func isGzip(_ header: String?) throws(ErrnoError) -> Bool {
    let name = HeaderParameters(header ?? "").value
    if name.isEmpty || name == "identity" { return false }
    if name == "gzip" { return true }
    throw ErrnoError(EINVAL, "unsupported Content-Encoding \(name): supported are gzip, identity")
  }

  /// Moves the body to the file in batches; a body cut short is EIO.
  private func pump(_ body: RequestBody, into target: OffsetWriteTarget) async throws {
    var iterator = body.makeAsyncIterator()
    var ended = false
    while !ended {
      var batch: [ByteBuffer] = []
      var batchBytes = 0
      do {
        while batchBytes < Self.batchSize, let chunk = try await iterator.next() {
          batch.append(chunk)
          batchBytes += chunk.readableBytes
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
final class OffsetWriteTarget: @unchecked Sendable {
  private let file: FileDescriptor
  private let path: ExtensionPath
  private let gzip: GzipDecompressor?
  private var position: Int64
  private(set) var written: Int64 = 0

  init(path: ExtensionPath, jail: RootJail, offset: Int64, size: Int64?, gzip: Bool)
    throws(ErrnoError)
  {
    self.path = path
    self.position = offset
    self.gzip = gzip ? GzipDecompressor() : nil
    let entry = try ResolvedEntry(path, in: jail)
    let handle = try entry.openPath()
    var info = stat()
    try checked(fstat(handle.raw, &info), path.description)
    if info.isSymlink { throw ErrnoError(ELOOP, path.description) }
    if info.isDirectory { throw ErrnoError(EISDIR, path.description) }
    guard info.isRegular else { throw ErrnoError(EINVAL, "not a regular file: \(path)") }
    file = try reopen(handle, flags: O_WRONLY, detail: path.description)
    if let size { try checked(ftruncate(file.raw, off_t(size)), path.description) }
  }

  func consume(_ chunks: [ByteBuffer]) throws(ErrnoError) {
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

  /// Ends the body and answers the file's attr after the write.
  func finish() throws(ErrnoError) -> ExtensionAttr {
    do {
      try gzip?.finish()
    } catch {
      throw ErrnoError(EINVAL, "request body: gzip: \(error)")
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
