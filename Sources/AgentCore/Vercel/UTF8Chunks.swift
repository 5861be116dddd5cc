import Foundation

/// Decodes a byte stream that arrives in chunks as UTF-8 text: a character split between two
/// chunks is held back until its rest arrives; invalid bytes become U+FFFD.
struct UTF8Chunks: Sendable {
  private var pending: [UInt8] = []

  mutating func decode(_ data: Data) -> String {
    var bytes = pending
    bytes.append(contentsOf: data)
    let cut = Self.completePrefix(bytes)
    pending = Array(bytes[cut...])
    return String(decoding: bytes[..<cut], as: UTF8.self)
  }

  /// Whatever is held back, at the end of the stream.
  mutating func flush() -> String {
    defer { pending = [] }
    return String(decoding: pending, as: UTF8.self)
  }

  /// The length of `bytes` without a trailing, incomplete multi-byte sequence.
  static func completePrefix(_ bytes: [UInt8]) -> Int {
    var index = bytes.count - 1
    var continuation = 0
    while index >= 0 && continuation < 3 && bytes[index] & 0xC0 == 0x80 {
      continuation += 1
      index -= 1
    }
    guard index >= 0 else { return bytes.count }
    let lead = bytes[index]
    let expected =
      switch lead {
      case 0xC0...0xDF: 2
      case 0xE0...0xEF: 3
      case 0xF0...0xF7: 4
      default: 1
      }
    return continuation + 1 < expected ? index : bytes.count
  }
}
