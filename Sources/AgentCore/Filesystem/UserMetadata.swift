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

extension UserMetadata {
  /// A failed xattr call, worded like envd's `pkg/xattr` errors ("xattr.FSet /a user.e2b.k: …").
  struct WriteError: Error {
    var operation: String
    var name: String
    var code: Int32

    var unsupported: Bool { code == ENOTSUP || code == EOPNOTSUPP }
    func message(path: String) -> String {
      "\(operation) \(path) \(name): \(SystemError.reason(code))"
    }
  }

  /// envd's `WriteMetadata` through an open file: `user.e2b.*` names absent from `values` are
  /// removed (O_TRUNC keeps xattrs, so an overwrite would otherwise keep stale ones), then each
  /// of `values` is set.
  static func replace(_ fd: Int32, with values: [String: [UInt8]]) throws(WriteError) {
    let ours = Array(prefix.utf8)
    // Names as bytes: one set inside the sandbox need not be UTF-8, and must go all the same.
    for name in try names(fd) where name.starts(with: ours) {
      let key = String(validating: name.dropFirst(ours.count), as: UTF8.self)
      guard key.flatMap({ values[$0] }) == nil else { continue }
      let removed = (name + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { fremovexattr(fd, $0.baseAddress) }
      }
      if removed != 0 && errno != ENODATA {
        throw WriteError(
          operation: "xattr.FRemove", name: String(decoding: name, as: UTF8.self), code: errno)
      }
    }
    for (key, value) in values {
      let name = prefix + key
      if fsetxattr(fd, name, value, value.count, 0) != 0 {
        throw WriteError(operation: "xattr.FSet", name: name, code: errno)
      }
    }
  }

  private static func names(_ fd: Int32) throws(WriteError) -> [[UInt8]] {
    for _ in 0..<3 {
      let size = flistxattr(fd, nil, 0)
      guard size >= 0 else { throw WriteError(operation: "xattr.FList", name: "", code: errno) }
      if size == 0 { return [] }
      var buffer = [UInt8](repeating: 0, count: size)
      let read = buffer.withUnsafeMutableBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { flistxattr(fd, $0.baseAddress, size) }
      }
      if read < 0 && errno == ERANGE { continue }  // Grew between the two calls.
      guard read >= 0 else { throw WriteError(operation: "xattr.FList", name: "", code: errno) }
      return buffer[..<read].split(separator: 0).map { Array($0) }
    }
    throw WriteError(operation: "xattr.FList", name: "", code: ERANGE)
  }
}
