import Foundation

/// envd's `parseAcceptEncoding`: q-values, only gzip and identity; identity is acceptable
/// unless refused with `identity;q=0` or `*;q=0`.
enum AcceptEncoding {
  enum Choice: Equatable {
    case identity
    case gzip
  }

  struct NotAcceptable: Error {
    let message = "no acceptable encoding found, supported: [gzip]"
  }

  static func negotiate(_ header: String?) throws(NotAcceptable) -> Choice {
    guard let header, !header.isEmpty else { return .identity }
    var offers: [(name: String, quality: Double)] = []
    for item in header.split(separator: ",", omittingEmptySubsequences: false) {
      let pieces = item.split(separator: ";", omittingEmptySubsequences: false)
      let name = pieces[0].trimmingCharacters(in: .whitespaces).lowercased()
      var quality = 1.0
      for parameter in pieces.dropFirst() {
        let parameter = parameter.trimmingCharacters(in: .whitespaces)
        if parameter.lowercased().hasPrefix("q="), let value = Double(parameter.dropFirst(2)) {
          quality = value
        }
      }
      offers.append((name, quality))
    }
    // Stable, highest quality first (Go's insertion sort keeps ties in order for short lists).
    let sorted = offers.enumerated().sorted {
      $0.element.quality != $1.element.quality
        ? $0.element.quality > $1.element.quality : $0.offset < $1.offset
    }.map(\.element)
    let identityRefused = sorted.contains {
      ($0.name == "identity" || $0.name == "*") && $0.quality == 0
    }
    for offer in sorted where offer.quality != 0 {
      switch offer.name {
      case "identity": return .identity
      case "*": return identityRefused ? .gzip : .identity
      case "gzip": return .gzip
      default: continue
      }
    }
    if !identityRefused { return .identity }
    throw NotAcceptable()
  }

  /// True when the header refuses identity (`identity;q=0`, or `*;q=0` without identity allowed).
  static func refusesIdentity(_ header: String?) -> Bool {
    guard let header else { return false }
    return header.split(separator: ",").contains { item in
      let pieces = item.split(separator: ";").map {
        $0.trimmingCharacters(in: .whitespaces).lowercased()
      }
      guard let name = pieces.first, name == "identity" || name == "*" else { return false }
      return pieces.dropFirst().contains { $0.hasPrefix("q=") && Double($0.dropFirst(2)) == 0 }
    }
  }
}
