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
    String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
  }
}
