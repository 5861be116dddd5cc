import HTTPTransport

/// An envd release as E2B's API reports it (`envdVersion`, e.g. "0.5.7"), and the releases this
/// client needs. envd serves no version itself (envd-protocol.md §9).
public struct EnvdVersion: Comparable, Sendable, CustomStringConvertible {
  public var major: Int
  public var minor: Int
  public var patch: Int

  public init(_ major: Int, _ minor: Int, _ patch: Int) {
    self.major = major
    self.minor = minor
    self.patch = patch
  }

  /// "0.5.7", "v0.5.7" or "0.5.7-rc1+abc" (the suffix is ignored); nil for anything else.
  public init?(_ text: String) {
    var core = Substring(text.trimmingASCIIWhitespace())
    if core.hasPrefix("v") { core = core.dropFirst() }
    if let suffix = core.firstIndex(where: { $0 == "-" || $0 == "+" }) { core = core[..<suffix] }
    let numbers = core.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
    guard (1...3).contains(numbers.count), numbers.allSatisfy({ ($0 ?? -1) >= 0 }) else {
      return nil
    }
    let parts = numbers.map { $0! } + [0, 0]
    self.init(parts[0], parts[1], parts[2])
  }

  public var description: String { "\(major).\(minor).\(patch)" }

  public static func < (left: EnvdVersion, right: EnvdVersion) -> Bool {
    (left.major, left.minor, left.patch) < (right.major, right.minor, right.patch)
  }

  /// Stat's size, mode, owner and modification time (EntryInfo fields of 0.2.5/0.2.6).
  public static let neededForReading = EnvdVersion(0, 2, 6)
  /// Uploads go as `application/octet-stream` bodies, gzip'ed when that pays off.
  public static let neededForWriting = EnvdVersion(0, 5, 7)
  /// Older envd needs a user on every call (`ENVD_DEFAULT_USER` in the SDK).
  public static let defaultsToTemplateUser = EnvdVersion(0, 4, 0)
}
