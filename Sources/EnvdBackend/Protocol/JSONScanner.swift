/// A strict, allocation-light JSON reader for the hot listing answers, where JSONDecoder's
/// per-field containers and metadata lookups dominated the daemon's CPU. Every method returns nil
/// (or false) on anything it does not handle exactly as JSONDecoder would; callers then decode the
/// same bytes with JSONDecoder, so results and errors stay JSONDecoder's.
struct JSONScanner {
  private let bytes: UnsafeBufferPointer<UInt8>
  private var index = 0

  init(_ bytes: UnsafeBufferPointer<UInt8>) {
    self.bytes = bytes
  }

  var isAtEnd: Bool {
    mutating get {
      skipWhitespace()
      return index == bytes.count
    }
  }

  mutating func skipWhitespace() {
    while index < bytes.count {
      switch bytes[index] {
      case 0x20, 0x09, 0x0A, 0x0D: index += 1
      default: return
      }
    }
  }

  var nextIsString: Bool {
    mutating get {
      skipWhitespace()
      return index < bytes.count && bytes[index] == UInt8(ascii: "\"")
    }
  }

  /// Consumes `byte` (after whitespace) if it is next.
  mutating func consume(_ byte: UInt8) -> Bool {
    skipWhitespace()
    guard index < bytes.count, bytes[index] == byte else { return false }
    index += 1
    return true
  }

  /// Consumes `null` if it is next.
  mutating func consumeNull() -> Bool {
    skipWhitespace()
    guard index + 4 <= bytes.count, bytes[index] == UInt8(ascii: "n"),
      bytes[index + 1] == UInt8(ascii: "u"), bytes[index + 2] == UInt8(ascii: "l"),
      bytes[index + 3] == UInt8(ascii: "l")
    else { return false }
    index += 4
    return true
  }

  /// Walks the members of an object whose `{` was consumed: `member` gets each key (raw bytes, no
  /// escapes allowed) and must consume its value; false stops. Ends after the `}`.
  mutating func members(_ member: (inout JSONScanner, UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
    if consume(UInt8(ascii: "}")) { return true }
    repeat {
      guard let key = plainKey(), consume(UInt8(ascii: ":")), member(&self, key) else {
        return false
      }
    } while consume(UInt8(ascii: ","))
    return consume(UInt8(ascii: "}"))
  }

  /// A key without escapes (every key of these messages), as a slice of the input.
  private mutating func plainKey() -> UnsafeBufferPointer<UInt8>? {
    guard case .plain(let range) = scanString() else { return nil }
    return UnsafeBufferPointer(rebasing: bytes[range])
  }

  /// A string value: valid UTF-8, escapes decoded. nil for anything else (including `null`).
  mutating func string() -> String? {
    switch scanString() {
    case .plain(let range): return String(validating: bytes[range], as: UTF8.self)
    case .escaped(let start): return escapedString(from: start)
    case .invalid: return nil
    }
  }

  private enum StringScan {
    /// The bytes between the quotes; `index` is past the closing one.
    case plain(Range<Int>)
    /// The string starting at `start` has an escape; `index` is at its backslash.
    case escaped(start: Int)
    case invalid
  }

  /// Scans a string up to its closing quote, or up to its first escape.
  private mutating func scanString() -> StringScan {
    guard consume(UInt8(ascii: "\"")) else { return .invalid }
    let start = index
    while index < bytes.count {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\"") {
        index += 1
        return .plain(start..<(index - 1))
      }
      if byte == UInt8(ascii: "\\") { return .escaped(start: start) }
      if byte < 0x20 { return .invalid }
      index += 1
    }
    return .invalid
  }

  private mutating func escapedString(from start: Int) -> String? {
    var decoded = Array(bytes[start..<index])
    while index < bytes.count {
      let byte = bytes[index]
      index += 1
      switch byte {
      case UInt8(ascii: "\""): return String(validating: decoded, as: UTF8.self)
      case 0..<0x20: return nil
      case UInt8(ascii: "\\"):
        guard index < bytes.count else { return nil }
        let escape = bytes[index]
        index += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
          guard var scalar = hex4() else { return nil }
          if (0xD800..<0xDC00).contains(scalar) {
            guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"),
              bytes[index + 1] == UInt8(ascii: "u")
            else { return nil }
            index += 2
            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let unicode = Unicode.Scalar(scalar) else { return nil }
          decoded.append(contentsOf: UTF8.encode(unicode)!)
        default: return nil
        }
      default: decoded.append(byte)
      }
    }
    return nil
  }

  private mutating func hex4() -> UInt32? {
    guard bytes.count - index >= 4 else { return nil }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[index]
      index += 1
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: return nil
      }
      value = value << 4 | UInt32(digit)
    }
    return value
  }

  /// A JSON number that is a plain integer (`-?(0|[1-9][0-9]*)`, no fraction or exponent) in
  /// Int64's range.
  mutating func integer() -> Int64? {
    skipWhitespace()
    let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
    if negative { index += 1 }
    let start = index
    guard let magnitude = decimalDigits() else { return nil }
    let count = index - start
    guard count > 0, count == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
    if index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): return nil
      default: break
      }
    }
    return Self.int64(magnitude, negative: negative)
  }

  /// A string holding what `Int64(_:)` parses (an optional sign, then decimal digits), read in
  /// place. nil for anything else, escapes included.
  mutating func quotedInteger() -> Int64? {
    guard consume(UInt8(ascii: "\"")), index < bytes.count else { return nil }
    let negative = bytes[index] == UInt8(ascii: "-")
    if negative || bytes[index] == UInt8(ascii: "+") { index += 1 }
    let start = index
    guard let magnitude = decimalDigits(), index > start, index < bytes.count,
      bytes[index] == UInt8(ascii: "\"")
    else { return nil }
    index += 1
    return Self.int64(magnitude, negative: negative)
  }

  /// Consumes decimal digits (maybe none); nil if their value overflows UInt64.
  private mutating func decimalDigits() -> UInt64? {
    var magnitude: UInt64 = 0
    while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9")
    {
      let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
      let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[index] - 48))
      if overflow1 || overflow2 { return nil }
      magnitude = sum
      index += 1
    }
    return magnitude
  }

  private static func int64(_ magnitude: UInt64, negative: Bool) -> Int64? {
    if negative {
      guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
      return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
    }
    guard magnitude <= UInt64(Int64.max) else { return nil }
    return Int64(magnitude)
  }

  /// Skips any well-formed value (fields this client does not read).
  mutating func skipValue(depth: Int = 0) -> Bool {
    guard depth < 64 else { return false }
    skipWhitespace()
    guard index < bytes.count else { return false }
    switch bytes[index] {
    case UInt8(ascii: "\""):
      return string() != nil
    case UInt8(ascii: "{"):
      index += 1
      return members { scanner, _ in scanner.skipValue(depth: depth + 1) }
    case UInt8(ascii: "["):
      index += 1
      if consume(UInt8(ascii: "]")) { return true }
      repeat {
        guard skipValue(depth: depth + 1) else { return false }
      } while consume(UInt8(ascii: ","))
      return consume(UInt8(ascii: "]"))
    case UInt8(ascii: "t"): return literal("true")
    case UInt8(ascii: "f"): return literal("false")
    case UInt8(ascii: "n"): return consumeNull()
    default: return skipNumber()
    }
  }

  private mutating func literal(_ word: StaticString) -> Bool {
    let count = word.utf8CodeUnitCount
    guard bytes.count - index >= count else { return false }
    for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
    index += count
    return true
  }

  /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
  private mutating func skipNumber() -> Bool {
    func digits(_ scanner: inout JSONScanner) -> Int {
      let start = scanner.index
      while scanner.index < scanner.bytes.count, scanner.bytes[scanner.index] >= 48,
        scanner.bytes[scanner.index] <= 57
      {
        scanner.index += 1
      }
      return scanner.index - start
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
    let start = index
    let whole = digits(&self)
    guard whole > 0, whole == 1 || bytes[start] != UInt8(ascii: "0") else { return false }
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
      index += 1
      guard digits(&self) > 0 else { return false }
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
      index += 1
      if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")
      {
        index += 1
      }
      guard digits(&self) > 0 else { return false }
    }
    return true
  }
}

extension UnsafeBufferPointer<UInt8> {
  /// Whether these bytes spell `text`.
  func spells(_ text: StaticString) -> Bool {
    elementsEqual(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
  }
}
