import Foundation
import Glibc

/// A path of the extension protocol: raw bytes (names need not be UTF-8), absolute, cleaned
/// lexically. `..` above `/` is refused rather than clamped.
struct ExtensionPath: Sendable, Equatable, CustomStringConvertible {
  let components: [[UInt8]]

  init(components: [[UInt8]]) {
    self.components = components
  }

  init(_ bytes: [UInt8]) throws(ErrnoError) {
    let shown = String(decoding: bytes, as: UTF8.self)
    guard bytes.first == UInt8(ascii: "/") else {
      throw ErrnoError(EINVAL, "path must be absolute: \(shown)")
    }
    guard !bytes.contains(0) else { throw ErrnoError(EINVAL, "path contains a NUL byte") }
    // Linux refuses a path whose length with its NUL exceeds PATH_MAX. The kernel gets it
    // relative to the root, without the protocol's leading "/"; components over NAME_MAX are
    // the kernel's to refuse.
    guard bytes.count - 1 < Int(PATH_MAX) else { throw ErrnoError(ENAMETOOLONG, shown) }
    var parts: [[UInt8]] = []
    for part in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
      switch Array(part) {
      case [UInt8(ascii: ".")]: continue
      case [UInt8(ascii: "."), UInt8(ascii: ".")]:
        guard !parts.isEmpty else { throw ErrnoError(EACCES, "path escapes the root: \(shown)") }
        parts.removeLast()
      default: parts.append(Array(part))
      }
    }
    components = parts
  }

  static let root = ExtensionPath(components: [])

  var isRoot: Bool { components.isEmpty }
  var parent: ExtensionPath { ExtensionPath(components: Array(components.dropLast())) }
  /// The last component (empty for the root).
  var name: [UInt8] { components.last ?? [] }

  func appending(_ name: [UInt8]) -> ExtensionPath {
    ExtensionPath(components: components + [name])
  }

  /// For messages: `/a/b`, with bytes that are not UTF-8 replaced.
  var description: String {
    "/" + components.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
  }
}

/// A path field as the request carried it: `"path"` (a string) or `"pathBytes"` (base64).
struct RawPath: Sendable, Equatable {
  var bytes: [UInt8]

  /// Validates and cleans; a missing field is EINVAL naming it.
  static func require(_ raw: RawPath?, field: String) throws(ErrnoError) -> ExtensionPath {
    guard let raw else { throw ErrnoError(EINVAL, "\(field) is required") }
    return try ExtensionPath(raw.bytes)
  }
}

extension Array where Element == UInt8 {
  /// NUL-terminated, for the `*at` calls.
  var cString: [CChar] { map { CChar(bitPattern: $0) } + [0] }
}
