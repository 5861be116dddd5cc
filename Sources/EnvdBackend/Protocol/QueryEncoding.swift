/// Percent-encoding of query values: everything but RFC 3986 unreserved characters and `/`
/// (envd paths are plain absolute paths; `/` is legal in a query and keeps URLs readable).
enum QueryEncoding {
  static func encode(_ value: String) -> String {
    var output: [UInt8] = []
    output.reserveCapacity(value.utf8.count)
    let hex = Array("0123456789ABCDEF".utf8)
    for byte in value.utf8 {
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
        UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
        output.append(byte)
      default:
        output.append(UInt8(ascii: "%"))
        output.append(hex[Int(byte >> 4)])
        output.append(hex[Int(byte & 0x0F)])
      }
    }
    return String(decoding: output, as: UTF8.self)
  }
}
