import Backend
import ExecLayer
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Uploads through the extension's replace route (temporary file, fsync, size check, rename,
/// the target's owner and mode) and offset writes through its write route.
extension EnvdExtensionBackend {
  /// Replaces the file with the local file's content, streamed; see `EnvdConnection.upload`.
  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    try await connection.upload(path, from: localPath) { descriptor, size in
      try await uploadOnce(path, descriptor: descriptor, size: size)
    }
  }

  private func uploadOnce(_ path: String, descriptor: Int32, size: Int64) async throws
    -> RemoteEntryState?
  {
    if let route = offer.writeRoute {
      let (headers, body) = try connection.uploadBody(descriptor: descriptor, size: size)
      let query =
        "?path=" + QueryEncoding.encode(client.protocolPath(path)) + "&replace=1&length=\(size)"
      if let answer = try await extensionWrite(
        path, route: route, query: query, body: body, headers: headers)
      {
        return answer
      }
      // Missing (removed meanwhile): envd's upload creates it.
    }
    return try await connection.stockUpload(path, descriptor: descriptor, size: size)
  }

  /// Writes `ranges` of the local file into the existing remote file at the same offsets, in
  /// place (same inode): a truncate to `truncateFirst` first, and the size `size` at the end.
  /// Returns the new attributes; a size other than `size` afterwards is EIO.
  ///
  /// One offset write per range, streamed from the local file (gzip'ed when a range is the
  /// whole file and that pays off). An agent without the write route: as stock envd.
  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    let context = "write \(path)"
    return try await connection.withLocalFile(localPath, context: context) { descriptor in
      guard let route = offer.writeRoute else {
        return try await connection.stockWriteRanges(
          path, descriptor: descriptor, ranges: ranges, truncateFirst: truncateFirst, size: size)
      }
      return try await writeRanges(
        path, descriptor: descriptor, route: route, ranges: ranges, truncateFirst: truncateFirst,
        size: size)
    }
  }

  private func writeRanges(
    _ path: String, descriptor: Int32, route: String, ranges: [Range<UInt64>],
    truncateFirst: UInt64?, size: UInt64
  ) async throws -> RemoteAttributes? {
    let context = "write \(path)"

    var attributes: RemoteAttributes?
    var pendingTruncate = truncateFirst
    // A size change alone is an empty write that sets the size.
    var writes = ranges
    if writes.isEmpty || truncateFirst != nil && writes.first?.lowerBound != 0 {
      writes.insert(0..<0, at: 0)
    }
    for range in writes {
      let length = Int64(range.upperBound - range.lowerBound)
      var query =
        "?path=" + QueryEncoding.encode(client.protocolPath(path))
        + "&offset=\(range.lowerBound)&length=\(length)"
      if let wanted = pendingTruncate ?? (range.isEmpty ? size : nil) { query += "&size=\(wanted)" }
      pendingTruncate = nil
      var headers = ["Content-Type: application/octet-stream"]
      let body: RequestBody
      if range == 0..<size {
        (headers, body) = try connection.uploadBody(descriptor: descriptor, size: length)
      } else {
        body = .fileRange(descriptor: descriptor, offset: Int64(range.lowerBound), length: length)
      }
      attributes = try await extensionWrite(
        path, route: route, query: query, body: body, headers: headers)?.attributes
      guard attributes != nil else {
        throw RemoteError(errno: ENOENT, "\(context): the file is gone")
      }
    }
    if let reached = attributes?.size, reached != size {
      // A truncate that ended below the last write's end, or past it (zeros).
      let query =
        "?path=" + QueryEncoding.encode(client.protocolPath(path)) + "&offset=0&size=\(size)"
      attributes = try await extensionWrite(
        path, route: route, query: query, body: .none,
        headers: ["Content-Type: application/octet-stream"])?.attributes
    }
    if let reached = attributes?.size, reached != size {
      throw RemoteError(errno: EIO, "\(context): the sandbox holds \(reached) bytes, not \(size)")
    }
    return attributes
  }

  /// An offset write or replace through the extension's route; nil when the file is missing.
  private func extensionWrite(
    _ path: String, route: String, query: String, body: RequestBody, headers: [String]
  ) async throws -> RemoteEntryState? {
    let context = "upload \(path)"
    var headers = headers
    if let caller = callerToSend() {
      headers.append("Sandbox-Agent-Caller: " + caller.headerValue)
    }
    let response = try await client.post(
      route: route + query,
      HTTPRequest(
        method: .post, url: "", headers: headers, body: body,
        sink: .memory(expected: 0, limit: 1 << 20), bulk: true))
    if let failure = client.transportError(response, context: context) { throw failure }
    if response.status == 200 {
      do {
        let answer = try decodeJSON(ExtensionWriteResponse.self, response.body)
        guard let attr = answer.attr else {
          throw RemoteError(errno: EIO, "\(context): the answer has no attr")
        }
        return RemoteEntryState(attr.attributes, parent: answer.parent?.attributes)
      } catch {
        throw RemoteError(errno: EIO, "\(context): undecodable answer from the agent: \(error)")
      }
    }
    let error = ExtensionErrno.remoteError(
      status: response.status, body: response.body, context: context)
    if error.errno == ENOENT { return nil }
    throw error
  }
}
