import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /files`: envd's `PostFiles`. The body is streamed to disk in batches on the thread pool.
struct FileUpload {
  let services: AgentServices
  /// Bytes gathered from the socket before one hop to the thread pool.
  static let batchSize = 512 * 1024

  func respond(to request: Request) async -> Response {
    let query = QueryParameters(request.uri.query)
    if let malformed = FilesAccess.malformedExpiration(query) { return malformed }
    do {
      try FilesAccess(services: services).authorize(request, query: query, operation: .write)
      var body = request.body.makeAsyncIterator()
      let gzip = try contentEncodingIsGzip(request)
      var prefix: [ByteBuffer] = []
      if gzip { prefix = try await checkGzipHeader(&body) }
      let user = try services.users.filesUser(username: query["username"])
      let metadata = UploadMetadata(request.headers)
      try metadata.validate()
      let sink = try await makeSink(
        request, query: query, user: user, gzip: gzip, metadata: metadata)
      let entries = try await pump(
        prefix: prefix, body: &body, into: sink, counted: request.headers[.contentLength] != nil)
      return Self.answer(entries)
    } catch let error as EnvdHTTPError {
      return .envdError(error)
    } catch let failure as UploadFailure {
      services.logger.warning("upload failed: \(failure.message)")
      return .envdError(failure.httpError)
    } catch {
      return .envdError(EnvdHTTPError(status: 500, "\(error)"))
    }
  }

  private func contentEncodingIsGzip(_ request: Request) throws(EnvdHTTPError) -> Bool {
    guard let header = request.headers[.contentEncoding], !header.isEmpty else { return false }
    let name = HeaderParameters(header).value
    if name == "identity" { return false }
    if name == "gzip" { return true }
    throw EnvdHTTPError(
      status: 400,
      "error decompressing request body: unsupported Content-Encoding: \(header), supported: [gzip]"
    )
  }

  /// Go's `gzip.NewReader` reads the header up front; a bad one is a 400 before anything else.
  private func checkGzipHeader(_ body: inout RequestBody.AsyncIterator) async throws -> [ByteBuffer]
  {
    var prefix: [ByteBuffer] = []
    var count = 0
    while count < 2, let chunk = try await body.next() {
      prefix.append(chunk)
      count += chunk.readableBytes
    }
    let bytes = prefix.flatMap { $0.readableBytesView }.prefix(2)
    guard count > 0 else {
      throw EnvdHTTPError(
        status: 400, "error decompressing request body: failed to create gzip reader: EOF")
    }
    guard Array(bytes) == [0x1f, 0x8b] else {
      throw EnvdHTTPError(
        status: 400,
        "error decompressing request body: failed to create gzip reader: gzip: invalid header")
    }
    return prefix
  }

  private func makeSink(
    _ request: Request, query: QueryParameters, user: AgentUser, gzip: Bool,
    metadata: UploadMetadata
  ) async throws -> any UploadSink {
    let contentType = request.headers[.contentType] ?? ""
    let media = HeaderParameters(contentType)
    let decoder = BodyDecoder(gzip: gzip ? GzipDecompressor() : nil)
    let declaredLength = request.headers[.contentLength].flatMap { Int($0) }
    let jail = services.jail
    let logger = services.logger
    if media.value == "application/octet-stream" {
      guard let rawPath = query["path"] else {
        throw EnvdHTTPError(status: 400, "path query parameter is required for raw body upload")
      }
      let path: ProtocolPath
      do {
        path = try ProtocolPath.expand(rawPath, user: user)
      } catch {
        throw EnvdHTTPError(status: 400, "error resolving path: \(error.message)")
      }
      let target = try await services.blocking {
        try UploadTarget(
          path: path, user: user, jail: jail, declaredLength: declaredLength, metadata: metadata,
          logger: logger)
      }
      return RawUploadSink(target: target, decoder: decoder)
    }
    if media.value.hasPrefix("multipart/") {
      guard let boundary = media["boundary"], !boundary.isEmpty else {
        throw EnvdHTTPError(
          status: 400, "error parsing multipart form: no multipart boundary param in Content-Type")
      }
      return MultipartUploadSink(
        boundary: boundary, queryPath: query["path"], user: user, jail: jail,
        declaredLength: declaredLength, decoder: decoder, metadata: metadata, logger: logger)
    }
    throw EnvdHTTPError(
      status: 400,
      "unsupported content type: \(contentType), expected multipart/form-data or application/octet-stream"
    )
  }

  /// Moves the body to the sink in batches; a body cut short is envd's 500 "unexpected EOF".
  private func pump(
    prefix: [ByteBuffer], body: inout RequestBody.AsyncIterator, into sink: any UploadSink,
    counted: Bool
  ) async throws -> [UploadEntry] {
    var batch = prefix
    var batchBytes = prefix.reduce(0) { $0 + $1.readableBytes }
    if !counted { services.counters.countReceived(batchBytes) }
    var ended = false
    while !ended {
      do {
        while batchBytes < Self.batchSize, let chunk = try await body.next() {
          batch.append(chunk)
          batchBytes += chunk.readableBytes
          if !counted { services.counters.countReceived(chunk.readableBytes) }
        }
        ended = batchBytes < Self.batchSize
      } catch {
        // A body cut short or badly framed: the client's fault (envd says 500).
        throw UploadFailure(400, "error writing file: unexpected EOF")
      }
      let chunks = batch
      batch.removeAll(keepingCapacity: true)
      batchBytes = 0
      if !chunks.isEmpty { try await services.blocking { try sink.consume(chunks) } }
    }
    return try await services.blocking { try sink.finish() }
  }

  /// `[{"metadata":{…},"name":…,"path":…,"type":"file"}]`: oapi-codegen's struct has its fields
  /// in alphabetical order. envd sets no Content-Type, so Go sniffs text/plain.
  static func answer(_ entries: [UploadEntry]) -> Response {
    let data = (try? protocolJSONEncoder().encode(entries)) ?? Data("[]".utf8)
    return .json(data, contentType: "text/plain; charset=utf-8")
  }
}
