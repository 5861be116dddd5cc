import Backend

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

extension EnvdBackend {
  /// `POST /files` with a raw `application/octet-stream` body streamed from `localPath`
  /// (gzip-compressed when `compressUploads` and it pays off).
  ///
  /// envd creates missing parents, so this method checks the parent first with a Stat and
  /// throws ENOENT/ENOTDIR itself: callers need not guarantee it.
  public func upload(_ path: String, from localPath: String?) async throws {
    let context = "upload \(path)"
    if path == "/" { throw RemoteError(errno: EISDIR, "\(context): the mount root is a directory") }
    try await requireDirectory(RemotePath.parent(of: path), for: context)

    var headers = ["Content-Type: application/octet-stream"]
    var body = RequestBody.none
    var descriptor: Int32 = -1
    defer { if descriptor >= 0 { close(descriptor) } }
    if let localPath {
      descriptor = open(localPath, O_RDONLY | O_CLOEXEC)
      var info = Glibc.stat()
      guard descriptor >= 0, fstat(descriptor, &info) == 0 else {
        throw RemoteError(
          errno: errno, "\(context): cannot read \(localPath): \(String(cString: strerror(errno)))")
      }
      let size = Int64(info.st_size)
      if client.configuration.compressUploads,
        GzipFileBodySource.paysOff(descriptor: descriptor, size: size)
      {
        do {
          body = .stream(try GzipFileBodySource(descriptor: descriptor))
          headers.append("Content-Encoding: gzip")
        } catch {
          body = .stream(FileBodySource(descriptor: descriptor, length: size))
        }
      } else {
        body = .stream(FileBodySource(descriptor: descriptor, length: size))
      }
    }

    let response = try await client.files(
      HTTPRequest(
        method: .post, url: client.filesURL(path), headers: headers, body: body,
        sink: .memory(expected: 0, limit: 1 << 20), bulk: localPath != nil))
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.isSuccessStatus else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
  }
}
