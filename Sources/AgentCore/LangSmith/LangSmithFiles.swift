import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import NIOCore

extension LangSmithSandbox {
  /// `GET /download?path=` (and `HEAD`, a stat): the file with a strong `ETag` and
  /// `Last-Modified`; one `Range` (206, or 416 with `Content-Range: bytes */SIZE`), honoured
  /// only while `If-Range` still matches; `If-None-Match` answers 304 for an unchanged file.
  func download(_ request: Request, head: Bool) async throws -> Response {
    let rawPath = request.uri.queryParameters.get("path") ?? ""
    let path = try Self.resolve(rawPath)
    let jail = services.jail
    let (file, info) = try await services.blocking { try Self.openForRead(path, jail: jail) }
    let size = Int(info.st_size)
    let etag = Self.etag(info)
    let modified = Int(info.st_mtim.tv_sec)
    var headers: HTTPFields = [
      .eTag: etag, .lastModified: HTTPDate.format(modified), .acceptRanges: "bytes",
      .contentType: "application/octet-stream",
    ]
    if let noneMatch = request.headers[.ifNoneMatch], Self.matches(noneMatch, etag: etag) {
      return Response(status: .notModified, headers: headers)
    }
    if head {
      headers[.contentLength] = String(size)
      return Response(status: .ok, headers: headers)
    }
    var rangeHeader = request.headers[.range]
    if let ifRange = request.headers[.ifRange], !ifRange.isEmpty {
      let stillValid =
        ifRange.hasPrefix("\"") ? ifRange == etag : HTTPDate.parse(ifRange) == modified
      if !stillValid { rangeHeader = nil }
    }
    switch RangeRequest.parse(rangeHeader, size: size) {
    case .unsatisfiable:
      var error = LangSmithError(
        416, "RangeNotSatisfiable", "range '\(rangeHeader ?? "")' is past the end of the file")
      error.headers = [.contentRange: "bytes */\(size)", .eTag: etag]
      throw error
    case .single(let range):
      headers[.contentRange] = range.contentRange(size: size)
      return Response(
        status: .partialContent, headers: headers,
        body: FileStreaming.identityBody(
          file, start: range.start, length: range.length, services: services))
    case .whole:
      return Response(
        status: .ok, headers: headers,
        body: FileStreaming.identityBody(file, start: 0, length: size, services: services))
    }
  }

  /// Strong and opaque: changes with the inode, size or modification time (nanoseconds).
  static func etag(_ info: stat) -> String {
    let nanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    return
      "\"\(String(info.st_ino, radix: 16))-\(String(info.st_size, radix: 16))-\(String(nanoseconds, radix: 16))\""
  }

  /// `If-None-Match`: `*` or any listed tag (weak ones compared weakly, as RFC 9110 says).
  static func matches(_ header: String, etag: String) -> Bool {
    for item in header.split(separator: ",") {
      var tag = item.trimmingCharacters(in: .whitespaces)
      if tag == "*" { return true }
      if tag.hasPrefix("W/") { tag = String(tag.dropFirst(2)) }
      if tag == etag { return true }
    }
    return false
  }

  private static func openForRead(_ path: ProtocolPath, jail: RootJail) throws -> (
    FileDescriptor, stat
  ) {
    do {
      let file = try jail.open(path, flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC)
      let info = try RootJail.fstat(file, operation: "stat", path: path)
      if info.isDirectory {
        throw LangSmithError(400, "ReadError", "'\(path.requested)' is a directory")
      }
      return (file, info)
    } catch let error as SystemError {
      if error.code == EISDIR {
        throw LangSmithError(400, "ReadError", "'\(path.requested)' is a directory")
      }
      throw LangSmithError.from(error, path: path.requested)
    }
  }

  /// `POST /upload?path=`: a multipart body whose `file` part is the file (or a raw body);
  /// parents are created, an existing file is replaced in place.
  func upload(_ request: Request) async throws -> Response {
    guard let rawPath = request.uri.queryParameters.get("path") else {
      throw LangSmithError.badRequest("the path query parameter is required")
    }
    let path = try Self.resolve(rawPath)
    let user = services.users.defaultUser
    let jail = services.jail
    let logger = services.logger
    let media = HeaderParameters(request.headers[.contentType] ?? "")
    let declaredLength = request.headers[.contentLength].flatMap { Int($0) }
    let metadata = UploadMetadata(HTTPFields())
    let decoder = BodyDecoder(gzip: nil)
    let sink: any UploadSink
    do {
      if media.value.hasPrefix("multipart/") {
        guard let boundary = media["boundary"], !boundary.isEmpty else {
          throw LangSmithError.badRequest("multipart body without a boundary")
        }
        sink = MultipartUploadSink(
          boundary: boundary, queryPath: path.cleaned, user: user, jail: jail,
          declaredLength: declaredLength, decoder: decoder, metadata: metadata, logger: logger)
      } else {
        let target = try await services.blocking {
          try UploadTarget(
            path: path, user: user, jail: jail, declaredLength: declaredLength,
            metadata: metadata, logger: logger)
        }
        sink = RawUploadSink(target: target, decoder: decoder)
      }
      var batch: [ByteBuffer] = []
      var batchBytes = 0
      for try await chunk in request.body {
        batch.append(chunk)
        batchBytes += chunk.readableBytes
        if batchBytes >= FileUpload.batchSize {
          let chunks = batch
          batch = []
          batchBytes = 0
          try await services.blocking { try sink.consume(chunks) }
        }
      }
      let chunks = batch
      if !chunks.isEmpty { try await services.blocking { try sink.consume(chunks) } }
      let entries = try await services.blocking { try sink.finish() }
      guard !entries.isEmpty else { throw LangSmithError.badRequest("no 'file' part in the form") }
    } catch let failure as UploadFailure {
      throw LangSmithError(failure.status, "WriteError", failure.message)
    }
    return langSmithJSON(["path": path.cleaned])
  }
}
