import Backend
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

extension EnvdRemote {
  /// A ranged GET (identity encoding; a Range forces it anyway), checked by `TruncationCheck`.
  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    guard length > 0 else { return [] }
    let context = "read \(path) at \(offset)"
    let expected = TruncationCheck.expectedCount(
      offset: offset, length: length, expectedSize: expectedSize)
    let request = HTTPRequest(
      method: .get, url: client.filesURL(path), range: "\(offset)-\(offset + UInt64(length) - 1)",
      sink: .memory(expected: Int(expected ?? UInt64(length)), limit: length),
      bulk: length >= 64 << 10)
    for attempt in 1...2 {
      let response = try await client.files(request)
      let verdict = TruncationCheck.judgeRange(
        response, offset: offset, length: length, expectedSize: expectedSize,
        transportFailure: client.transportError(response, context: context), context: context)
      switch verdict {
      case .complete:
        return response.status == 416 ? [] : response.body
      case .failed(let error):
        throw error
      case .short(let delivered, let expected):
        try reportShort(context, delivered: delivered, expected: expected, attempt: attempt)
      }
    }
    throw RemoteError(errno: EIO, "\(context): truncated")  // not reached: reportShort throws
  }

  /// Streams the whole file into `localPath` as it arrives; on failure the local file is left
  /// empty, never partial.
  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    let context = "download \(path)"
    let descriptor = open(localPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw LocalError(errno: errno, "open for \(context)", localPath)
    }
    defer { close(descriptor) }
    do {
      for attempt in 1...2 {
        guard ftruncate(descriptor, 0) == 0, lseek(descriptor, 0, SEEK_SET) == 0 else {
          throw LocalError(errno: errno, "reset for \(context)", localPath)
        }
        let response = try await client.files(
          HTTPRequest(method: .get, url: client.filesURL(path), sink: .file(descriptor: descriptor))
        )
        if response.localErrno != 0 {
          // This machine's disk, not the sandbox: a full local disk must not read as EIO there.
          throw LocalError(errno: response.localErrno, "write for \(context)", localPath)
        }
        let verdict = TruncationCheck.judgeDownload(
          response, expectedSize: expectedSize,
          transportFailure: client.transportError(response, context: context), context: context)
        switch verdict {
        case .complete:
          return response.bytesReceived
        case .failed(let error):
          throw error
        case .short(let delivered, let expected):
          try reportShort(context, delivered: delivered, expected: expected, attempt: attempt)
        }
      }
      throw RemoteError(errno: EIO, "\(context): truncated")  // not reached
    } catch {
      _ = ftruncate(descriptor, 0)
      throw error
    }
  }

  /// Logs a short body; throws EIO on the second attempt.
  private func reportShort(_ context: String, delivered: UInt64, expected: UInt64, attempt: Int)
    throws
  {
    let detail = "\(context): expected \(expected) bytes, got \(delivered)"
    if attempt == 1 {
      logger.warning("short body, retrying: \(detail)")
      return
    }
    logger.error("truncated twice, failing with EIO: \(detail)")
    throw RemoteError(errno: EIO, "\(detail) (truncated twice)")
  }
}
