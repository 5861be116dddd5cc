import Glibc

/// HTTP dates (`Mon, 02 Jan 2006 15:04:05 GMT`), as Go's `http.TimeFormat` writes and
/// `http.ParseTime` reads them (IMF-fixdate, RFC 850, asctime).
enum HTTPDate {
  static func format(_ seconds: Int) -> String {
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    var buffer = [CChar](repeating: 0, count: 64)
    let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Seconds since the epoch, or nil when `text` is in none of the three formats.
  static func parse(_ text: String) -> Int? {
    // Tokens of all three formats once separators are dropped:
    // IMF "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT",
    // asctime "Sun Nov  6 08:49:37 1994".
    let tokens = text.split(whereSeparator: { " ,-:".contains($0) }).map(String.init)
    var day: Int?
    var month: Int?
    var year: Int?
    var clock: [Int]?
    if tokens.count == 8, tokens[7] == "GMT" {
      day = Int(tokens[1])
      month = months.firstIndex(of: tokens[2])
      year = Int(tokens[3])
      if let y = year, tokens[3].count == 2 { year = y + (y < 70 ? 2000 : 1900) }
      clock = tokens[4...6].compactMap { Int($0) }
    } else if tokens.count == 7 {
      month = months.firstIndex(of: tokens[1])
      day = Int(tokens[2])
      clock = tokens[3...5].compactMap { Int($0) }
      year = Int(tokens[6])
    }
    guard let day, let month, let year, let clock, clock.count == 3,
      (1...31).contains(day), clock[0] < 24, clock[1] < 60, clock[2] < 61
    else { return nil }
    var parts = tm()
    parts.tm_year = Int32(year - 1900)
    parts.tm_mon = Int32(month)
    parts.tm_mday = Int32(day)
    parts.tm_hour = Int32(clock[0])
    parts.tm_min = Int32(clock[1])
    parts.tm_sec = Int32(clock[2])
    return timegm(&parts)
  }

  private static let months = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
  ]
}
