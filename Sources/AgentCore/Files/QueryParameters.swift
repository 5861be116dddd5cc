import Foundation

/// A URL query parsed like Go's `url.ParseQuery`: `+` is a space, first value wins.
struct QueryParameters {
  private var values: [String: String] = [:]

  init(_ query: String?) {
    guard let query else { return }
    for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
      let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      guard let key = Self.unescape(parts[0]) else { continue }
      let value = parts.count > 1 ? Self.unescape(parts[1]) : ""
      if values[key] == nil, let value { values[key] = value }
    }
  }

  subscript(_ key: String) -> String? { values[key] }

  private static func unescape(_ text: Substring) -> String? {
    // Most queries have nothing to decode, and Foundation's decoding costs more than the rest of
    // a small request's parsing.
    guard text.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) else {
      return String(text)
    }
    return String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
  }
}
