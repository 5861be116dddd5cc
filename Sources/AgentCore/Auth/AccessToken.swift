import Crypto
import Foundation

/// The configured access token; compared in constant time so response timing leaks nothing.
public struct AccessToken: Sendable {
  private let bytes: [UInt8]

  public init(_ token: String) { bytes = Array(token.utf8) }

  public func matches(_ candidate: String?) -> Bool {
    guard let candidate else { return false }
    return !bytes.isEmpty && Self.constantTimeEqual(bytes, Array(candidate.utf8))
  }

  /// envd's `generateSignature` for a `/files` URL:
  /// `v1_` + unpadded base64 of SHA-256 over `path:operation:username:token[:expiration]`.
  func signature(path: String, operation: String, username: String, expiration: Int?) -> String {
    var input = Array("\(path):\(operation):\(username):".utf8) + bytes
    if let expiration { input += Array(":\(expiration)".utf8) }
    var encoded = Substring(Data(SHA256.hash(data: input)).base64EncodedString())
    while encoded.last == "=" { encoded = encoded.dropLast() }
    return "v1_" + encoded
  }

  /// Like Go's `subtle.ConstantTimeCompare`: the time depends on the lengths only.
  static func constantTimeEqual(_ ours: [UInt8], _ theirs: [UInt8]) -> Bool {
    // Not the low byte of `count ^ count`: lengths 256 apart would then compare equal.
    var difference: UInt8 = ours.count == theirs.count ? 0 : 1
    for index in 0..<ours.count {
      difference |= ours[index] ^ (index < theirs.count ? theirs[index] : 0)
    }
    return difference == 0
  }
}
