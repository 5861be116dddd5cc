import Foundation
import Glibc
import HTTPTypes
import Hummingbird

/// `GET /files`: envd's `GetFiles`, with Go's `http.ServeContent` semantics for identity.
struct FileDownload {
  let services: AgentServices

  func respond(to request: Request) async -> Response {
    let query = QueryParameters(request.uri.query)
    if let malformed = FilesAccess.malformedExpiration(query) { return malformed }
    let rawPath = query["path"] ?? ""
    do {
      try FilesAccess(services: services).authorize(request, query: query, operation: .read)
      let user = try services.users.filesUser(username: query["username"])
      let path: ProtocolPath
      do {
        path = try ProtocolPath.expand(rawPath, user: user)
      } catch {
        throw EnvdHTTPError(
          status: 400, "error expanding and resolving path '\(rawPath)': \(error.message)")
      }
      let (file, info, firstChunk) = try await open(path, preReading: preRead(for: request))
      let encoding = try negotiateEncoding(request)
      var headers: HTTPFields = [
        .vary: "Accept-Encoding", .contentDisposition: ContentType.disposition(path.requested),
      ]
      if encoding == .gzip {
        headers[.contentEncoding] = "gzip"
        headers[.contentType] = ContentType.forPath(path.requested)
        return Response(
          status: .ok, headers: headers, body: FileStreaming.gzipBody(file, services: services))
      }
      return serveContent(
        request, file: file, info: info, firstChunk: firstChunk, path: path, headers: headers)
    } catch let error as EnvdHTTPError {
      return .envdError(error)
    } catch {
      return .envdError(EnvdHTTPError(status: 500, "\(error)"))
    }
  }

  /// Bytes read together with the open: the response then needs no read of its own (the mount's
  /// random 4 KiB reads and the small files of `grep -r`).
  static let preReadLimit = 256 << 10
  /// Pre-reads this small are done on the event loop, like the open (see `open`).
  static let eventLoopReadLimit = 64 << 10

  /// What to read together with the open.
  enum PreRead: Sendable {
    /// The response may not be an identity body (conditional request, gzip).
    case nothing
    case wholeFile
    case range(header: String)
  }

  private func preRead(for request: Request) -> PreRead {
    let headers = request.headers
    guard headers[.ifModifiedSince] == nil, headers[.ifNoneMatch] == nil,
      headers[.ifRange] == nil, headers[.ifUnmodifiedSince] == nil
    else { return .nothing }
    if let range = headers[.range] { return .range(header: range) }
    guard (try? AcceptEncoding.negotiate(headers[.acceptEncoding])) == .identity else {
      return .nothing
    }
    return .wholeFile
  }

  /// `os.Stat` (following symlinks), directory check, then `os.Open`, with envd's messages; also
  /// reads `preReading`'s bytes when they are few.
  ///
  /// The open and fstat run on the connection's event loop, as nginx opens files: on a local
  /// filesystem they take microseconds, while a trip to the thread pool and back costs two thread
  /// wake-ups (measured: 13% of the agent's CPU per random 4 KiB read of the mount, 25% in a
  /// `grep -r`). Reads go to the pool unless they are small.
  private func open(_ path: ProtocolPath, preReading: PreRead) async throws -> (
    FileDescriptor, stat, FileStreaming.Chunk?
  ) {
    let (file, info) = try Self.openFile(path, jail: services.jail)
    guard let wanted = Self.preReadRange(info: info, range: preReading) else {
      return (file, info, nil)
    }
    let chunk =
      wanted.length <= Self.eventLoopReadLimit
      ? Self.read(file, wanted)
      : try await services.blocking { Self.read(file, wanted) }
    return (file, info, chunk)
  }

  /// The open comes first: when it succeeds, the stat of the open file answers the same and
  /// saves a path walk; when it fails, the stat says which of envd's errors it is.
  private static func openFile(_ path: ProtocolPath, jail: RootJail) throws(EnvdHTTPError) -> (
    FileDescriptor, stat
  ) {
    let opened: (file: FileDescriptor, info: stat)
    do throws(SystemError) {
      // O_NONBLOCK: opening a FIFO must not hang the request (envd's would), nor the loop.
      let file = try jail.open(path, flags: O_RDONLY | O_NONBLOCK)
      opened = (file, try RootJail.fstat(file, operation: "stat", path: path))
    } catch let openError {
      throw openFailure(path, openError: openError, jail: jail)
    }
    if opened.info.isDirectory {
      throw EnvdHTTPError(status: 400, "path '\(path.requested)' is a directory")
    }
    return opened
  }

  /// envd's answer when the open failed: what its stat would have said, else the open's error.
  private static func openFailure(_ path: ProtocolPath, openError: SystemError, jail: RootJail)
    -> EnvdHTTPError
  {
    do {
      if try jail.stat(path).isDirectory {
        return EnvdHTTPError(status: 400, "path '\(path.requested)' is a directory")
      }
    } catch  where error.code == ENOENT {
      return EnvdHTTPError(status: 404, "path '\(path.requested)' does not exist")
    } catch {
      return EnvdHTTPError(
        status: 500, "error checking if path exists '\(path.requested)': \(error)")
    }
    return EnvdHTTPError(status: 500, "error opening file '\(path.requested)': \(openError)")
  }

  /// The identity body's bytes, when they are few enough to read with the open.
  private static func preReadRange(info: stat, range: PreRead) -> ByteRange? {
    guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
    let size = Int(info.st_size)
    let parsed: RangeRequest
    switch range {
    case .nothing: return nil
    case .wholeFile: parsed = .whole
    case .range(let header): parsed = RangeRequest.parse(header, size: size)
    }
    let wanted: ByteRange
    switch parsed {
    case .whole: wanted = ByteRange(start: 0, length: size)
    case .single(let range): wanted = range
    case .unsatisfiable: return nil
    }
    guard wanted.length > 0, wanted.length <= preReadLimit else { return nil }
    return wanted
  }

  /// `wanted`'s bytes, or nil when the file no longer has them all (the body's reads then tell).
  private static func read(_ file: FileDescriptor, _ wanted: ByteRange) -> FileStreaming.Chunk? {
    guard let bytes = try? FileStreaming.read(file, offset: wanted.start, count: wanted.length),
      bytes.readableBytes == wanted.length
    else { return nil }
    return FileStreaming.Chunk(start: wanted.start, bytes: bytes)
  }

  /// gzip or identity; Range and conditional requests force identity (406 if identity is refused).
  private func negotiateEncoding(_ request: Request) throws(EnvdHTTPError) -> AcceptEncoding.Choice
  {
    let header = request.headers[.acceptEncoding]
    let choice: AcceptEncoding.Choice
    do {
      choice = try AcceptEncoding.negotiate(header)
    } catch {
      throw EnvdHTTPError(status: 406, "error parsing Accept-Encoding: \(error.message)")
    }
    let forcesIdentity =
      request.headers[.range] != nil || request.headers[.ifModifiedSince] != nil
      || request.headers[.ifNoneMatch] != nil || request.headers[.ifRange] != nil
    guard forcesIdentity else { return choice }
    if AcceptEncoding.refusesIdentity(header) {
      throw EnvdHTTPError(
        status: 406,
        "error parsing Accept-Encoding: identity is required for Range and conditional requests")
    }
    return .identity
  }

  /// Go's `http.ServeContent` without ETags: preconditions, one range, Last-Modified.
  private func serveContent(
    _ request: Request, file: FileDescriptor, info: stat, firstChunk: FileStreaming.Chunk?,
    path: ProtocolPath, headers: HTTPFields
  ) -> Response {
    var headers = headers
    let size = Int(info.st_size)
    let modified = Int(info.st_mtim.tv_sec)
    let hasModTime = modified != 0
    if hasModTime { headers[.lastModified] = HTTPDate.format(modified) }

    // If-Unmodified-Since (no If-Match support: no ETags).
    if hasModTime, let text = request.headers[.ifUnmodifiedSince], let since = HTTPDate.parse(text),
      modified > since
    {
      return Response(status: .preconditionFailed, headers: headers)
    }
    // If-None-Match: only `*` can match without ETags; any other value disables If-Modified-Since.
    if let noneMatch = request.headers[.ifNoneMatch], !noneMatch.isEmpty {
      if noneMatch.trimmingCharacters(in: .whitespaces).hasPrefix("*") {
        return Response(status: .notModified, headers: headers)
      }
    } else if hasModTime, let text = request.headers[.ifModifiedSince],
      let since = HTTPDate.parse(text), modified <= since
    {
      return Response(status: .notModified, headers: headers)
    }

    var rangeHeader = request.headers[.range]
    if let ifRange = request.headers[.ifRange], !ifRange.isEmpty {
      // Without ETags, only a date equal to the modification time keeps the range.
      if ifRange.hasPrefix("\"") || ifRange.hasPrefix("W/") || !hasModTime
        || HTTPDate.parse(ifRange) != modified
      {
        rangeHeader = nil
      }
    }

    headers[.contentType] = ContentType.forPath(path.requested)
    headers[.acceptRanges] = "bytes"
    switch RangeRequest.parse(rangeHeader, size: size) {
    case .unsatisfiable(let noOverlap):
      var errorHeaders = headers
      errorHeaders[.contentType] = nil
      if noOverlap { errorHeaders[.contentRange] = "bytes */\(size)" }
      var response = Response.plainText(
        noOverlap ? "invalid range: failed to overlap" : "invalid range",
        status: .rangeNotSatisfiable)
      for field in errorHeaders where response.headers[field.name] == nil {
        response.headers.append(field)
      }
      return response
    case .single(let range):
      headers[.contentRange] = range.contentRange(size: size)
      return Response(
        status: .partialContent, headers: headers,
        body: FileStreaming.identityBody(
          file, start: range.start, length: range.length, firstChunk: firstChunk,
          services: services))
    case .whole:
      return Response(
        status: .ok, headers: headers,
        body: FileStreaming.identityBody(
          file, start: 0, length: size, firstChunk: firstChunk, services: services))
    }
  }
}
