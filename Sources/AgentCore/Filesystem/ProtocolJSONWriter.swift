/// An answer that writes its own protocol JSON: the same bytes `protocolJSONEncoder()` makes
/// (sorted keys, no `\/`), without JSONEncoder's per-field boxing, dictionaries and key sorting,
/// which dominated the agent's CPU on large listings.
protocol ProtocolJSONWritable: Encodable {
  func write(to json: inout ProtocolJSONWriter)
  /// Bytes to reserve up front.
  var estimatedJSONSize: Int { get }
}

extension ProtocolJSONWritable {
  var estimatedJSONSize: Int { 256 }
}

/// Appends JSON tokens to a byte buffer. Callers write keys in sorted (bytewise) order.
struct ProtocolJSONWriter {
  private(set) var bytes: [UInt8] = []

  init(capacity: Int = 256) {
    bytes.reserveCapacity(capacity)
  }

  mutating func raw(_ text: StaticString) {
    text.withUTF8Buffer { bytes.append(contentsOf: $0) }
  }

  /// `"key":`, for keys that need no escaping.
  mutating func key(_ name: StaticString) {
    bytes.append(UInt8(ascii: "\""))
    raw(name)
    raw("\":")
  }

  /// `{"key":value}`: the answers that wrap one message.
  mutating func object(_ key: StaticString, _ value: some ProtocolJSONWritable) {
    raw("{")
    self.key(key)
    value.write(to: &self)
    raw("}")
  }

  /// `[value,value,…]`
  mutating func array(_ values: [some ProtocolJSONWritable]) {
    raw("[")
    for (index, value) in values.enumerated() {
      if index > 0 { raw(",") }
      value.write(to: &self)
    }
    raw("]")
  }

  mutating func number(_ value: UInt64) {
    var digits: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)  // 40 bytes ≥ 20 digits
    var count = 0
    var rest = value
    withUnsafeMutableBytes(of: &digits) { buffer in
      repeat {
        buffer[39 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
        rest /= 10
        count += 1
      } while rest != 0
      bytes.append(contentsOf: buffer[(40 - count)...])
    }
  }

  mutating func number(_ value: Int64) {
    if value < 0 { bytes.append(UInt8(ascii: "-")) }
    number(value.magnitude)
  }

  /// A 64-bit integer as protobuf JSON writes it: a decimal string.
  mutating func quoted(_ value: UInt64) {
    bytes.append(UInt8(ascii: "\""))
    number(value)
    bytes.append(UInt8(ascii: "\""))
  }

  mutating func quoted(_ value: Int64) {
    bytes.append(UInt8(ascii: "\""))
    number(value)
    bytes.append(UInt8(ascii: "\""))
  }

  /// A string from valid UTF-8, escaped as JSONEncoder escapes it: `"`, `\` and control
  /// characters; `/` and non-ASCII go through as they are.
  mutating func string(utf8: some Collection<UInt8>) {
    bytes.append(UInt8(ascii: "\""))
    for byte in utf8 {
      switch byte {
      case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), byte])
      case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), byte])
      case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
      case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
      case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
      case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
      case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
      case 0..<0x20:
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        bytes.append(contentsOf: [
          UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
          hex[Int(byte >> 4)], hex[Int(byte & 0xF)],
        ])
      default: bytes.append(byte)
      }
    }
    bytes.append(UInt8(ascii: "\""))
  }

  mutating func string(_ text: String) {
    var text = text
    text.withUTF8 { string(utf8: $0) }
  }
}
