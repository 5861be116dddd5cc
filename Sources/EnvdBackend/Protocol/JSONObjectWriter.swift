/// Writes the flat JSON objects of the extension's requests (strings, 32-bit numbers, booleans)
/// straight into bytes. JSONEncoder's boxing and key lookups cost more than the rest of building
/// a metadata call, and every file system call pays it. Nil fields are left out, as with Codable.
struct JSONObjectWriter {
  private(set) var bytes: [UInt8]

  init(capacity: Int = 64) {
    bytes = []
    bytes.reserveCapacity(capacity)
    bytes.append(UInt8(ascii: "{"))
  }

  var finished: [UInt8] { bytes + [UInt8(ascii: "}")] }

  mutating func add(_ key: StaticString, _ value: String?) {
    guard let value else { return }
    addKey(key)
    bytes.append(UInt8(ascii: "\""))
    for byte in value.utf8 {
      switch byte {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"):
        bytes.append(UInt8(ascii: "\\"))
        bytes.append(byte)
      case 0..<0x20:
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(contentsOf: Array("\\u00".utf8))
        bytes.append(hex[Int(byte >> 4)])
        bytes.append(hex[Int(byte & 0xF)])
      default:
        bytes.append(byte)
      }
    }
    bytes.append(UInt8(ascii: "\""))
  }

  mutating func add(_ key: StaticString, _ value: UInt32?) {
    guard let value else { return }
    addKey(key)
    bytes.append(contentsOf: String(value).utf8)
  }

  mutating func add(_ key: StaticString, _ value: Bool?) {
    guard let value else { return }
    addKey(key)
    bytes.append(contentsOf: value ? Array("true".utf8) : Array("false".utf8))
  }

  /// A string known to need no escaping (base64): copied as it is.
  mutating func addPlain(_ key: StaticString, _ value: String?) {
    guard let value else { return }
    addKey(key)
    bytes.append(UInt8(ascii: "\""))
    bytes.append(contentsOf: value.utf8)
    bytes.append(UInt8(ascii: "\""))
  }

  /// `value`: JSON already written (an array or object).
  mutating func addRaw(_ key: StaticString, _ value: [UInt8]) {
    addKey(key)
    bytes += value
  }

  private mutating func addKey(_ key: StaticString) {
    if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
    bytes.append(UInt8(ascii: "\""))
    key.withUTF8Buffer { bytes.append(contentsOf: $0) }
    bytes.append(UInt8(ascii: "\""))
    bytes.append(UInt8(ascii: ":"))
  }
}

/// A request message `JSONObjectWriter` can write.
protocol JSONObjectEncodable {
  func write(to json: inout JSONObjectWriter)
}

extension JSONObjectEncodable {
  var jsonBytes: [UInt8] {
    var json = JSONObjectWriter()
    write(to: &json)
    return json.finished
  }
}
