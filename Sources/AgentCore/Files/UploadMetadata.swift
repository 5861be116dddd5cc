import HTTPTypes

/// envd's `X-Metadata-<key>: <value>` upload headers (0.6.2+): each becomes the xattr
/// `user.e2b.<key>` on every uploaded file, and each upload replaces the file's whole set.
struct UploadMetadata: Sendable {
  /// Keys lower-cased; values as the bytes that came.
  private(set) var values: [String: [UInt8]] = [:]

  static let headerPrefix = "x-metadata-"
  /// The Linux VFS caps an xattr name, prefix included, at 255 bytes.
  static let maxKeyLength = 255 - UserMetadata.prefix.utf8.count
  /// ext4 keeps an inode's xattrs in one 4 KiB block; envd checks names plus values against it.
  static let maxTotalLength = 4096

  /// `extractMetadataHeaders`: a header with an empty key is skipped; for a key sent twice (in
  /// any case) the first value wins, as with Go's canonical header map.
  init(_ fields: HTTPFields) {
    for field in fields {
      let name = field.name.canonicalName
      guard name.hasPrefix(Self.headerPrefix) else { continue }
      let key = String(name.dropFirst(Self.headerPrefix.count))
      guard !key.isEmpty, values[key] == nil else { continue }
      values[key] = field.withUnsafeBytesOfValue { Array($0) }
    }
  }

  /// `ValidateMetadata`: printable ASCII only, key and total sizes capped; a 400 before the body.
  func validate() throws(EnvdHTTPError) {
    var total = 0
    // Go visits its map in random order; a fixed one keeps our answer stable.
    for key in values.keys.sorted() {
      let value = values[key]!
      if key.utf8.count > Self.maxKeyLength {
        throw Self.invalid("metadata key \"\(key)\" exceeds \(Self.maxKeyLength) bytes")
      }
      try Self.checkPrintable("key", Array(key.utf8))
      try Self.checkPrintable("value for key \"\(key)\"", value)
      total += UserMetadata.prefix.utf8.count + key.utf8.count + value.count
    }
    if total > Self.maxTotalLength {
      throw Self.invalid("total metadata size \(total) exceeds \(Self.maxTotalLength) bytes")
    }
  }

  private static func checkPrintable(_ label: String, _ bytes: [UInt8]) throws(EnvdHTTPError) {
    guard let offset = bytes.firstIndex(where: { $0 < 0x20 || $0 > 0x7E }) else { return }
    let hex = String(bytes[offset], radix: 16)
    throw invalid(
      "metadata \(label) contains non-printable-ASCII byte 0x\(hex.count == 1 ? "0" + hex : hex) at offset \(offset)"
    )
  }

  private static func invalid(_ reason: String) -> EnvdHTTPError {
    EnvdHTTPError(status: 400, "invalid metadata: \(reason)")
  }
}
