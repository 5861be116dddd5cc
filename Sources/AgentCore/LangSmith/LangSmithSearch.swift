import Foundation
import Glibc

/// `POST /glob`'s body.
struct LangSmithGlobRequest: Decodable, Sendable {
  var pattern: String
  var path: String
  var limit: Int?
}

/// `POST /grep`'s body.
struct LangSmithGrepRequest: Decodable, Sendable {
  var pattern: String
  var path: String
  var glob: String?
  var limit: Int?
}

/// One entry met while walking a directory tree inside the root.
struct WalkedEntry {
  var relative: [String]
  var info: stat
}

/// Glob patterns as LangSmith's `/glob` reads them: segments separated by `/`, `**` for any
/// number of segments, `*`, `?` and `[...]` within one segment (fnmatch).
struct GlobPattern: Sendable {
  let segments: [String]

  init(_ pattern: String) {
    segments = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
  }

  var hasDoubleStar: Bool { segments.contains("**") }

  func matches(_ path: [String]) -> Bool { Self.match(segments[...], path[...]) }

  private static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
    guard let first = pattern.first else { return path.isEmpty }
    if first == "**" {
      let rest = pattern.dropFirst()
      for skip in 0...path.count where match(rest, path.dropFirst(skip)) { return true }
      return false
    }
    guard let name = path.first, fnmatch(first, name, 0) == 0 else { return false }
    return match(pattern.dropFirst(), path.dropFirst())
  }

  /// Could anything at or below `prefix` match? Prunes the walk without `**`.
  func mayMatchBelow(depth: Int) -> Bool { hasDoubleStar || depth < segments.count }
}

extension LangSmithSandbox {
  static let defaultSearchLimit = 1000
  static let maximumSearchLimit = 10_000
  /// Files larger than this are not searched by `/grep`.
  static let grepFileLimit = 16 << 20

  /// `POST /glob`: entries under `path` whose relative path matches, sorted by path.
  func glob(_ request: LangSmithGlobRequest) async throws -> Data {
    let base = try Self.searchBase(request.path)
    let pattern = GlobPattern(request.pattern)
    let limit = Self.searchLimit(request.limit)
    let jail = services.jail
    return try await services.blocking {
      var matches: [[String: Any]] = []
      var truncated = false
      try Self.walk(base, jail: jail, descend: { pattern.mayMatchBelow(depth: $0.count) }) {
        entry in
        guard pattern.matches(entry.relative) else { return true }
        if matches.count >= limit {
          truncated = true
          return false
        }
        matches.append(Self.fileInfo(base: base, entry: entry))
        return true
      }
      return langSmithEncode(["matches": matches, "truncated": truncated])
    }
  }

  /// `POST /grep`: lines holding `pattern` literally, in regular files under `path` (`glob`
  /// filters them: a bare pattern by basename, one with `/` or `**` by relative path).
  func grep(_ request: LangSmithGrepRequest) async throws -> Data {
    guard !request.pattern.isEmpty else { throw LangSmithError.badRequest("pattern is empty") }
    let base = try Self.searchBase(request.path)
    let filter = request.glob.map(GlobPattern.init)
    let byName = request.glob.map { !$0.contains("/") && !$0.contains("**") } ?? false
    let needle = Array(request.pattern.utf8)
    let limit = Self.searchLimit(request.limit)
    let jail = services.jail
    return try await services.blocking {
      var matches: [[String: Any]] = []
      var truncated = false
      try Self.walk(base, jail: jail, descend: { _ in true }) { entry in
        guard entry.info.isRegular, Int(entry.info.st_size) <= Self.grepFileLimit else {
          return true
        }
        if let filter {
          let subject = byName ? [entry.relative.last!] : entry.relative
          if !filter.matches(subject) { return true }
        }
        let path = base.appendingComponents(entry.relative)
        guard let file = try? jail.open(path, flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC),
          let bytes = try? FileStreaming.read(file, offset: 0, count: Int(entry.info.st_size))
        else { return true }
        let content = Array(bytes.readableBytesView)
        if content.contains(0) { return true }  // binary
        var lineNumber = 0
        for line in content.split(separator: 0x0A, omittingEmptySubsequences: false) {
          lineNumber += 1
          guard Self.contains(line, needle) else { continue }
          if matches.count >= limit {
            truncated = true
            return false
          }
          matches.append([
            "path": path.cleaned, "line": lineNumber,
            "text": String(decoding: line, as: UTF8.self),
          ])
        }
        return true
      }
      return langSmithEncode(["matches": matches, "truncated": truncated])
    }
  }

  private static func contains(_ line: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
    guard line.count >= needle.count else { return false }
    var start = line.startIndex
    while start + needle.count <= line.endIndex {
      if line[start] == needle[0] && line[start..<start + needle.count].elementsEqual(needle) {
        return true
      }
      start += 1
    }
    return false
  }

  private static func searchLimit(_ requested: Int?) -> Int {
    guard let requested, requested > 0 else { return defaultSearchLimit }
    return min(requested, maximumSearchLimit)
  }

  private static func searchBase(_ raw: String) throws(LangSmithError) -> ProtocolPath {
    try resolve(raw.isEmpty ? "/" : raw)
  }

  private static func fileInfo(base: ProtocolPath, entry: WalkedEntry) -> [String: Any] {
    let seconds = Double(entry.info.st_mtim.tv_sec) + Double(entry.info.st_mtim.tv_nsec) / 1e9
    return [
      "path": base.appendingComponents(entry.relative).cleaned,
      "is_dir": entry.info.isDirectory,
      "size_bytes": Int(entry.info.st_size),
      "modified_at": rfc3339(Date(timeIntervalSince1970: seconds)),
    ]
  }

  /// Depth-first walk below `base`, in name order, never following symlinks (each directory is
  /// opened with `O_NOFOLLOW` relative to its parent). `visit` returns false to stop.
  static func walk(
    _ base: ProtocolPath, jail: RootJail, descend: ([String]) -> Bool,
    visit: (WalkedEntry) throws -> Bool
  ) throws {
    let root: FileDescriptor
    do {
      root = try jail.open(base, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    } catch {
      if error.code == ENOTDIR {
        throw LangSmithError(400, "InvalidPath", "'\(base.requested)' is not a directory")
      }
      throw LangSmithError.from(error, path: base.requested)
    }
    _ = try walkDirectory(root.raw, relative: [], descend: descend, visit: visit)
  }

  private static func walkDirectory(
    _ fd: Int32, relative: [String], descend: ([String]) -> Bool,
    visit: (WalkedEntry) throws -> Bool
  ) throws -> Bool {
    let copy = dup(fd)
    guard copy >= 0, let directory = fdopendir(copy) else { return true }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    closedir(directory)
    for name in names.sorted() {
      var info = stat()
      guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
      let path = relative + [name]
      guard try visit(WalkedEntry(relative: path, info: info)) else { return false }
      if info.isDirectory && descend(path) {
        let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard child >= 0 else { continue }
        defer { close(child) }
        guard try walkDirectory(child, relative: path, descend: descend, visit: visit) else {
          return false
        }
      }
    }
    return true
  }
}

extension ProtocolPath {
  func appendingComponents(_ names: [String]) -> ProtocolPath {
    names.reduce(self) { $0.appending($1) }
  }
}
