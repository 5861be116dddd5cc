import Foundation
import Hummingbird

/// Content-Type from a file name's extension (Go's `mime.TypeByExtension` adds
/// `charset=utf-8` to text types), else `application/octet-stream`.
enum ContentType {
  static func forPath(_ path: String) -> String {
    let name = path.split(separator: "/").last.map(String.init) ?? path
    guard let dot = name.lastIndex(of: "."), dot != name.index(before: name.endIndex) else {
      return "application/octet-stream"
    }
    let fileExtension = name[name.index(after: dot)...].lowercased()
    guard let type = MediaType.getMediaType(forExtension: fileExtension) else {
      return "application/octet-stream"
    }
    let text = type.description
    if text.hasPrefix("text/") && !text.contains("charset") { return text + "; charset=utf-8" }
    return text
  }

  /// `inline; filename="<base>"`, with RFC 2231 encoding for names that are not plain ASCII.
  static func disposition(_ path: String) -> String {
    let name = path.split(separator: "/").last.map(String.init) ?? path
    if name.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
      // Escaped byte by byte: Foundation's replacingOccurrences was 3% of a small download.
      var escaped = ""
      escaped.reserveCapacity(name.utf8.count)
      for character in name.unicodeScalars {
        if character == "\\" || character == "\"" { escaped.unicodeScalars.append("\\") }
        escaped.unicodeScalars.append(character)
      }
      return "inline; filename=\"\(escaped)\""
    }
    let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    let encoded = name.utf8.map {
      unreserved.contains($0) ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0)
    }.joined()
    return "inline; filename*=utf-8''\(encoded)"
  }
}
