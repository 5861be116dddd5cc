import Backend

/// Parses protobuf JSON timestamps: `2026-08-01T10:00:00.123456789Z`, 0…9 fractional digits,
/// `Z` or a `±hh:mm` offset. Hand-written because Foundation's parsers stop at milliseconds.
enum RFC3339 {
  static func parse(_ text: String) -> RemoteTime? {
    var bytes = Array(text.utf8)[...]
    func number(_ count: Int) -> Int? {
      guard bytes.count >= count else { return nil }
      var value = 0
      for byte in bytes.prefix(count) {
        guard byte >= 48, byte <= 57 else { return nil }
        value = value * 10 + Int(byte - 48)
      }
      bytes = bytes.dropFirst(count)
      return value
    }
    func expect(_ characters: String) -> Bool {
      guard let byte = bytes.first, characters.utf8.contains(byte) else { return false }
      bytes = bytes.dropFirst()
      return true
    }
    guard let year = number(4), expect("-"), let month = number(2), expect("-"),
      let day = number(2),
      expect("Tt "), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
      let second = number(2), (1...12).contains(month), (1...31).contains(day), hour < 24,
      minute < 60, second <= 60
    else { return nil }
    var nanoseconds = 0
    if expect(".") {
      var digits = 0
      while let byte = bytes.first, byte >= 48, byte <= 57 {
        // Digits past nanoseconds are dropped, not rounded.
        if digits < 9 { nanoseconds = nanoseconds * 10 + Int(byte - 48) }
        digits += 1
        bytes = bytes.dropFirst()
      }
      guard digits > 0 else { return nil }
      for _ in digits..<max(digits, 9) { nanoseconds *= 10 }
    }
    var offsetSeconds = 0
    if expect("Zz") {
      offsetSeconds = 0
    } else if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
      bytes = bytes.dropFirst()
      guard let offsetHours = number(2), expect(":"), let offsetMinutes = number(2) else {
        return nil
      }
      offsetSeconds =
        (offsetHours * 3600 + offsetMinutes * 60) * (sign == UInt8(ascii: "-") ? -1 : 1)
    } else {
      return nil
    }
    guard bytes.isEmpty else { return nil }
    let days = daysSinceEpoch(year: year, month: month, day: day)
    let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
    return RemoteTime(seconds: seconds, nanoseconds: Int32(nanoseconds))
  }

  /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
  static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
    let shiftedYear = month <= 2 ? year - 1 : year
    let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
    let yearOfEra = shiftedYear - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146097 + dayOfEra - 719468
  }
}
