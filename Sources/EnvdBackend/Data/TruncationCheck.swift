import Backend
import CCurl
import HTTPTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Judges `GET /files` answers against the size the stat before them promised: a short body is
/// truncation (the file shrank, or the connection closed early), retried once and then EIO.
enum TruncationCheck {
  enum Verdict: Equatable {
    case complete
    /// Fewer bytes than promised: retry once, then EIO.
    case short(delivered: UInt64, expected: UInt64)
    case failed(RemoteError)
  }

  /// Bytes a read must deliver: `min(length, expectedSize - offset)`; nil when `expectedSize` is
  /// 0 (pseudo-files report 0 and are taken as they come).
  static func expectedCount(offset: UInt64, length: Int, expectedSize: UInt64) -> UInt64? {
    guard expectedSize > 0 else { return nil }
    return offset >= expectedSize ? 0 : min(UInt64(length), expectedSize - offset)
  }

  /// The answer to a ranged GET for `length` bytes at `offset`. On `.complete`, the bytes to
  /// return are `response.body` (empty for 416).
  static func judgeRange(
    _ response: HTTPResponse, offset: UInt64, length: Int, expectedSize: UInt64,
    transportFailure: RemoteError?, context: String
  ) -> Verdict {
    let expected = expectedCount(offset: offset, length: length, expectedSize: expectedSize)
    if response.curlCode == CURLE_PARTIAL_FILE.rawValue {
      let delivered = UInt64(response.body.count)
      return .short(delivered: delivered, expected: max(expected ?? 0, delivered + 1))
    }
    if let transportFailure { return .failed(transportFailure) }
    var delivered = UInt64(response.body.count)
    switch response.status {
    case 416:
      delivered = 0  // at or past the end of the file
    case 206:
      guard let start = rangeStart(response.contentRange), start == offset else {
        return .failed(
          RemoteError(
            errno: EIO,
            "\(context): asked for bytes from \(offset), got Content-Range '\(response.contentRange ?? "")'"
          ))
      }
    case 200:
      // A server that ignores Range sends the whole file: usable only from its start.
      guard offset == 0 else {
        return .failed(RemoteError(errno: EIO, "\(context): the server ignored the Range header"))
      }
    case 200..<300:
      return .failed(RemoteError(errno: EIO, "\(context): unexpected HTTP \(response.status)"))
    default:
      return .failed(
        EnvdErrorMapping.remoteError(status: response.status, body: response.body, context: context)
      )
    }
    if let encoding = response.contentEncoding, encoding.lowercased() != "identity" {
      return .failed(RemoteError(errno: EIO, "\(context): unexpected Content-Encoding \(encoding)"))
    }
    if let expected, delivered < expected {
      return .short(delivered: delivered, expected: expected)
    }
    return .complete
  }

  /// The answer to a whole-file GET that was written to a local file.
  static func judgeDownload(
    _ response: HTTPResponse, expectedSize: UInt64, transportFailure: RemoteError?, context: String
  ) -> Verdict {
    if response.curlCode == CURLE_PARTIAL_FILE.rawValue {
      let delivered = response.bytesReceived
      return .short(delivered: delivered, expected: max(expectedSize, delivered + 1))
    }
    if let transportFailure { return .failed(transportFailure) }
    guard response.status == 200 else {
      if response.isSuccessStatus {
        return .failed(RemoteError(errno: EIO, "\(context): unexpected HTTP \(response.status)"))
      }
      return .failed(
        EnvdErrorMapping.remoteError(status: response.status, body: response.body, context: context)
      )
    }
    if let encoding = response.contentEncoding, encoding.lowercased() != "identity" {
      return .failed(RemoteError(errno: EIO, "\(context): unexpected Content-Encoding \(encoding)"))
    }
    if response.bytesReceived < expectedSize {
      return .short(delivered: response.bytesReceived, expected: expectedSize)
    }
    return .complete
  }

  /// `a` of `bytes a-b/total`.
  static func rangeStart(_ contentRange: String?) -> UInt64? {
    guard let contentRange else { return nil }
    let trimmed = contentRange.trimmingASCIIWhitespace()
    guard trimmed.lowercased().hasPrefix("bytes ") else { return nil }
    let spec = trimmed.dropFirst("bytes ".count)
    guard let dash = spec.firstIndex(of: "-") else { return nil }
    return UInt64(spec[..<dash].trimmingCharacters(in: " "))
  }
}

extension Substring {
  fileprivate func trimmingCharacters(in set: Character) -> Substring {
    var result = self
    while result.first == set { result.removeFirst() }
    while result.last == set { result.removeLast() }
    return result
  }
}
