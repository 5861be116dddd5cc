import Glibc

/// protojson's `google.protobuf.Timestamp`: RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
enum ProtoTimestamp {
  static func string(seconds: Int, nanoseconds: Int) -> String {
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    var text =
      pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-"
      + pad(Int(parts.tm_mday), 2) + "T" + pad(Int(parts.tm_hour), 2) + ":"
      + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2)
    if nanoseconds != 0 {
      if nanoseconds % 1_000_000 == 0 {
        text += "." + pad(nanoseconds / 1_000_000, 3)
      } else if nanoseconds % 1000 == 0 {
        text += "." + pad(nanoseconds / 1000, 6)
      } else {
        text += "." + pad(nanoseconds, 9)
      }
    }
    return text + "Z"
  }

  private static func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
  }
}
