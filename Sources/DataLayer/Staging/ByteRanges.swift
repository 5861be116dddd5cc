/// A set of byte offsets as sorted, disjoint, non-adjacent ranges: which bytes of a staged file
/// are held locally, and which changed since the last upload.
public struct ByteRanges: Sendable, Equatable {
  public private(set) var ranges: [Range<UInt64>] = []

  public init(_ ranges: [Range<UInt64>] = []) {
    for range in ranges { insert(range) }
  }

  public var isEmpty: Bool { ranges.isEmpty }
  public var byteCount: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) } }

  public mutating func insert(_ range: Range<UInt64>) {
    guard !range.isEmpty else { return }
    var merged = range
    // Ranges that overlap or touch `range` merge into it.
    let first = ranges.firstIndex { $0.upperBound >= range.lowerBound } ?? ranges.endIndex
    var last = first
    while last < ranges.endIndex, ranges[last].lowerBound <= range.upperBound {
      merged =
        min(
          merged.lowerBound, ranges[last].lowerBound)..<max(
          merged.upperBound, ranges[last].upperBound)
      last += 1
    }
    ranges.replaceSubrange(first..<last, with: [merged])
  }

  public mutating func formUnion(_ other: ByteRanges) {
    for range in other.ranges { insert(range) }
  }

  /// Drops every byte at or past `offset` (a truncate).
  public mutating func removeAll(from offset: UInt64) {
    ranges = ranges.compactMap { range in
      guard range.lowerBound < offset else { return nil }
      return range.lowerBound..<min(range.upperBound, offset)
    }
  }

  /// `range` cut into pieces, each inside this set or outside it, in order.
  public func pieces(of range: Range<UInt64>) -> [(range: Range<UInt64>, inside: Bool)] {
    var result: [(Range<UInt64>, Bool)] = []
    var position = range.lowerBound
    for held in ranges where held.upperBound > position && held.lowerBound < range.upperBound {
      if held.lowerBound > position { result.append((position..<held.lowerBound, false)) }
      let end = min(held.upperBound, range.upperBound)
      result.append((max(held.lowerBound, position)..<end, true))
      position = end
    }
    if position < range.upperBound { result.append((position..<range.upperBound, false)) }
    return result
  }

  public func contains(_ range: Range<UInt64>) -> Bool {
    range.isEmpty
      || ranges.contains { $0.lowerBound <= range.lowerBound && $0.upperBound >= range.upperBound }
  }
}
