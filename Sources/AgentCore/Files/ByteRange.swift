/// One satisfiable byte range of a file.
struct ByteRange: Equatable {
  var start: Int
  var length: Int

  func contentRange(size: Int) -> String { "bytes \(start)-\(start + length - 1)/\(size)" }
}

/// The outcome of reading a `Range` header the way Go's `http.ServeContent` does.
enum RangeRequest: Equatable {
  /// No usable range: send the whole file (also for multi-range, which Go may do too).
  case whole
  case single(ByteRange)
  /// 416; `noOverlap` adds `Content-Range: bytes */SIZE`.
  case unsatisfiable(noOverlap: Bool)

  /// Go's `parseRange`, except that every range on an empty file and a zero-length suffix
  /// (`bytes=-0`) count as not overlapping, and several ranges are served as the whole file.
  static func parse(_ header: String?, size: Int) -> RangeRequest {
    guard let header, !header.isEmpty else { return .whole }
    guard header.hasPrefix("bytes=") else { return .unsatisfiable(noOverlap: false) }
    var ranges: [ByteRange] = []
    var noOverlap = false
    for item in header.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false) {
      let spec = item.trimmingSpaces
      if spec.isEmpty { continue }
      guard let dash = spec.firstIndex(of: "-") else { return .unsatisfiable(noOverlap: false) }
      let first = spec[..<dash].trimmingSpaces
      let last = spec[spec.index(after: dash)...].trimmingSpaces
      if first.isEmpty {
        guard !last.isEmpty, last.first != "-", let suffix = Int(last), suffix >= 0 else {
          return .unsatisfiable(noOverlap: false)
        }
        if suffix == 0 || size == 0 {
          noOverlap = true
          continue
        }
        let length = min(suffix, size)
        ranges.append(ByteRange(start: size - length, length: length))
      } else {
        guard let start = Int(first), start >= 0 else { return .unsatisfiable(noOverlap: false) }
        if start >= size {
          noOverlap = true
          continue
        }
        if last.isEmpty {
          ranges.append(ByteRange(start: start, length: size - start))
        } else {
          guard let end = Int(last), end >= start else { return .unsatisfiable(noOverlap: false) }
          ranges.append(ByteRange(start: start, length: min(end, size - 1) - start + 1))
        }
      }
    }
    if ranges.isEmpty { return noOverlap ? .unsatisfiable(noOverlap: true) : .whole }
    if ranges.count == 1 { return .single(ranges[0]) }
    return .whole
  }
}

extension Substring {
  fileprivate var trimmingSpaces: Substring {
    var text = self
    while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
    while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
    return text
  }
}
