import CXattr
import Glibc

/// envd's `ReadMetadata`: the `user.e2b.*` extended attributes of a file, prefix stripped, as
/// `EntryInfo.metadata`. Best effort, as in envd: a file system without xattrs, or any failure,
/// gives no metadata; entries that are not UTF-8 are skipped (protojson could not send them).
enum UserMetadata {
  static let prefix = "user.e2b."

  /// `hostPath` names the file on the host (a `/proc/self/fd/…` path for jailed files);
  /// `follow` reads a symlink's target, else the entry itself.
  static func read(hostPath: String, follow: Bool) -> [String: String] {
    guard let names = attributeNames(hostPath, follow: follow) else { return [:] }
    var metadata: [String: String] = [:]
    for name in names where name.hasPrefix(prefix) {
      guard let value = attributeValue(hostPath, name: name, follow: follow),
        let text = String(validating: value, as: UTF8.self)
      else { continue }
      metadata[String(name.dropFirst(prefix.count))] = text
    }
    return metadata
  }

  private static func attributeNames(_ path: String, follow: Bool) -> [String]? {
    // Most files have none: one call answers that.
    for _ in 0..<3 {
      let size = follow ? listxattr(path, nil, 0) : llistxattr(path, nil, 0)
      guard size > 0 else { return nil }
      var buffer = [UInt8](repeating: 0, count: size)
      let read = buffer.withUnsafeMutableBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) {
          follow ? listxattr(path, $0.baseAddress, size) : llistxattr(path, $0.baseAddress, size)
        }
      }
      if read < 0 && errno == ERANGE { continue }  // Grew between the two calls.
      guard read > 0 else { return nil }
      return buffer[..<read].split(separator: 0).compactMap {
        String(validating: $0, as: UTF8.self)
      }
    }
    return nil
  }

  private static func attributeValue(_ path: String, name: String, follow: Bool) -> [UInt8]? {
    for _ in 0..<3 {
      let size = follow ? getxattr(path, name, nil, 0) : lgetxattr(path, name, nil, 0)
      guard size >= 0 else { return nil }
      if size == 0 { return [] }
      var buffer = [UInt8](repeating: 0, count: size)
      let read = buffer.withUnsafeMutableBytes {
        follow
          ? getxattr(path, name, $0.baseAddress, size)
          : lgetxattr(path, name, $0.baseAddress, size)
      }
      if read < 0 && errno == ERANGE { continue }
      guard read >= 0 else { return nil }
      return Array(buffer[..<read])
    }
    return nil
  }
}
