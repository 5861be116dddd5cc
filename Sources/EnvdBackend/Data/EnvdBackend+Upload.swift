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
  /// envd creates missing parents, so this method checks the parent first (a Stat unless it was
  /// seen within a second, `KnownDirectories`) and throws ENOENT/ENOTDIR: callers need not.
  public func upload(_ path: String, from localPath: String?) async throws {
    let context = "upload \(path)"
    if path == "/" { throw RemoteError(errno: EISDIR, "\(context): the mount root is a directory") }

    var descriptor: Int32 = -1
    defer { if descriptor >= 0 { close(descriptor) } }
    var size: Int64 = 0
    if let localPath {
      descriptor = open(localPath, O_RDONLY | O_CLOEXEC)
      var info = Glibc.stat()
      guard descriptor >= 0, fstat(descriptor, &info) == 0 else {
        throw RemoteError(
          errno: errno, "\(context): cannot read \(localPath): \(String(cString: strerror(errno)))")
      }
      size = Int64(info.st_size)
    }

    // Built once: the stock POST below reuses it, rewound, after an extension ENOENT.
    let (headers, body) = try uploadBody(descriptor: descriptor, size: size)

    // With the extension, an existing file is rewritten in place: its inode, owner and mode stay
    // (envd's POST /files chowns it to the request user).
    if case .agentExtension(_, _, let route?) = try await serverMode() {
      if try await extensionRewrite(path, route: route, body: body, headers: headers) { return }
      if case .stream(let source) = body, !source.rewind() {
        throw RemoteError(errno: EIO, "\(context): cannot rewind the upload body")
      }
    }

    // Free when the parent was seen moments ago (the lookup before an open, an earlier upload).
    try await requireDirectory(RemotePath.parent(of: path), for: context)
    let response = try await client.files(
      HTTPRequest(
        method: .post, url: client.filesURL(path), headers: headers, body: body,
        sink: .memory(expected: 0, limit: 1 << 20), bulk: localPath != nil))
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.isSuccessStatus else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
    knownDirectories.remember(RemotePath.parent(of: path))
  }

  /// A body from the start of `descriptor` (-1: empty), gzip-compressed when it pays off.
  private func uploadBody(descriptor: Int32, size: Int64) throws -> ([String], RequestBody) {
    var headers = ["Content-Type: application/octet-stream"]
    guard descriptor >= 0 else { return (headers, .none) }
    guard lseek(descriptor, 0, SEEK_SET) == 0 else {
      throw RemoteError(errno: errno, "cannot rewind the local file")
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
