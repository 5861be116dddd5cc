import Foundation

/// Parameters of a header like `form-data; name="file"; filename="/a/b.txt"` or
/// `multipart/form-data; boundary=xyz`, as Go's `mime.ParseMediaType` reads them
/// (quoted strings with backslash escapes, RFC 2231 `name*=utf-8''…`, lower-cased keys).
struct HeaderParameters {
  let value: String
  private(set) var parameters: [String: String] = [:]

  init(_ header: String) {
    var rest = Substring(header)
    let valueEnd = rest.firstIndex(of: ";") ?? rest.endIndex
    value = rest[..<valueEnd].trimmingCharacters(in: .whitespaces).lowercased()
    rest = rest[valueEnd...]
    while rest.first == ";" {
      rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" }
      let keyEnd = rest.firstIndex { $0 == "=" || $0 == ";" } ?? rest.endIndex
      let key = rest[..<keyEnd].trimmingCharacters(in: .whitespaces).lowercased()
      rest = rest[keyEnd...]
      guard rest.first == "=" else { continue }
      rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" }
      var parsed = ""
      if rest.first == "\"" {
        rest = rest.dropFirst()
        while let character = rest.first, character != "\"" {
          rest = rest.dropFirst()
          if character == "\\", let escaped = rest.first {
            parsed.append(escaped)
            rest = rest.dropFirst()
          } else {
            parsed.append(character)
          }
        }
        rest = rest.dropFirst()
        rest = rest.drop { $0 != ";" }
      } else {
        let end = rest.firstIndex(of: ";") ?? rest.endIndex
        parsed = rest[..<end].trimmingCharacters(in: .whitespaces)
        rest = rest[end...]
      }
      if key.hasSuffix("*") {
        // RFC 2231: charset'language'percent-encoded
        let pieces = parsed.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        if pieces.count == 3, let decoded = String(pieces[2]).removingPercentEncoding {
          parameters[String(key.dropLast())] = decoded
        }
      } else if parameters[key] == nil {
        parameters[key] = parsed
      }
    }
  }

  subscript(_ key: String) -> String? { parameters[key] }
}
