import ArgumentParser

/// A size on the command line: bytes, or with a binary suffix K, M, G or T (`64M`, `1G`,
/// `512KiB`).
struct ByteCount: ExpressibleByArgument, CustomStringConvertible {
  var bytes: UInt64

  init(bytes: UInt64) {
    self.bytes = bytes
  }

  init?(argument: String) {
    var text = Substring(argument.trimmingCharacters(in: .whitespaces).uppercased())
    if text.hasSuffix("IB") {
      text = text.dropLast(2)
    } else if text.hasSuffix("B") {
      text = text.dropLast()
    }
    let shifts: [Character: UInt64] = ["K": 10, "M": 20, "G": 30, "T": 40]
    var shift: UInt64 = 0
    if let last = text.last, let found = shifts[last] {
      shift = found
      text = text.dropLast()
    }
    guard let number = UInt64(text), number <= (UInt64.max >> shift) else { return nil }
    bytes = number << shift
  }

  var description: String {
    for (suffix, shift) in [("G", 30), ("M", 20), ("K", 10)] as [(String, UInt64)]
    where bytes > 0 && bytes % (1 << shift) == 0 {
      return "\(bytes >> shift)\(suffix)"
    }
    return "\(bytes)"
  }

  static var defaultCompletionKind: CompletionKind { .default }
}
