/// The configured access token; compared in constant time so response timing leaks nothing.
public struct AccessToken: Sendable {
  private let bytes: [UInt8]

  public init(_ token: String) { bytes = Array(token.utf8) }

  public func matches(_ candidate: String?) -> Bool {
    guard let candidate else { return false }
    let other = Array(candidate.utf8)
    // Fold the length difference into the result instead of returning early.
    var difference = UInt8(truncatingIfNeeded: bytes.count ^ other.count)
    for index in 0..<bytes.count {
      let theirs = index < other.count ? other[index] : 0
      difference |= bytes[index] ^ theirs
    }
    return difference == 0 && !bytes.isEmpty
  }
}
