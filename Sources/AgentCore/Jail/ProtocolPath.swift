import Glibc

/// A path as the protocol names it, after envd's `~`/relative expansion, checked not to leave the
/// root. `requested` is echoed back in answers (envd does not clean absolute paths); `components`
/// is the lexically cleaned form the jail opens.
public struct ProtocolPath: Sendable, Equatable, CustomStringConvertible {
  public let requested: String
  public let components: [String]

  /// Cleans `path` (absolute) lexically. Refuses `..` climbing above the root and a NUL byte,
  /// which the system call would cut the path at (so `/a\0/../x` would not be what was checked).
  public init(validating path: String) throws(PathExpansionError) {
    guard !path.utf8.contains(0) else { throw .containsNUL(path: path) }
    var parts: [String] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
      switch part {
      case ".": continue
      case "..":
        if parts.isEmpty { throw .escapesRoot(path: path) }
        parts.removeLast()
      default:
        // The kernel's ENAMETOOLONG would come back as a server error.
        guard part.utf8.count <= Int(NAME_MAX) else { throw .tooLong(path: path) }
        parts.append(String(part))
      }
    }
    // The kernel gets the path relative to the root, with its NUL: under PATH_MAX.
    let relativeLength = parts.reduce(0) { $0 + $1.utf8.count } + max(parts.count - 1, 0)
    guard relativeLength < Int(PATH_MAX) else { throw .tooLong(path: path) }
    requested = path
    components = parts
  }

  /// `init(validating:)`, nil for any refusal.
  public init?(absolute path: String) {
    guard let valid = try? ProtocolPath(validating: path) else { return nil }
    self = valid
  }

  init(requested: String, components: [String]) {
    self.requested = requested
    self.components = components
  }

  public static let root = ProtocolPath(requested: "/", components: [])

  /// `/a/b`, cleaned.
  public var cleaned: String { "/" + components.joined(separator: "/") }
  /// Relative to the root folder, for `openat2`; `.` for the root itself.
  public var relative: String { components.isEmpty ? "." : components.joined(separator: "/") }
  public var isRoot: Bool { components.isEmpty }
  public var name: String { components.last ?? "/" }
  public var parent: ProtocolPath {
    let parts = Array(components.dropLast())
    return ProtocolPath(requested: "/" + parts.joined(separator: "/"), components: parts)
  }

  public func appending(_ name: String) -> ProtocolPath {
    let base = requested.hasSuffix("/") ? requested : requested + "/"
    return ProtocolPath(requested: base + name, components: components + [name])
  }

  public var description: String { requested }
}

/// Why a requested path cannot be used.
public enum PathExpansionError: Error, Sendable, Equatable {
  /// `~other`: envd cannot expand another user's home.
  case otherUsersHome(path: String, user: String)
  /// `..` climbing above the served root.
  case escapesRoot(path: String)
  /// A NUL byte: the kernel would read the path only up to it.
  case containsNUL(path: String)
  /// `PATH_MAX` bytes or more, or a name over `NAME_MAX`.
  case tooLong(path: String)

  public var message: String {
    switch self {
    case .otherUsersHome(let path, let user):
      "failed to expand path '\(path)' for user '\(user)': cannot expand user-specific home dir"
    case .escapesRoot(let path):
      "path '\(path.escapingControlCharacters)' escapes the served root"
    case .containsNUL(let path):
      "path '\(path.escapingControlCharacters)' contains a NUL byte"
    case .tooLong(let path):
      "path '\(path.prefix(64).escapingControlCharacters)…': file name too long"
    }
  }
}

extension PathExpansionError {
  /// The vendor protocols' wording: `path '…' escapes the sandbox's root`.
  public func sandboxMessage(_ shown: String, noun: String = "path") -> String {
    let shown = shown.count > 256 ? String(shown.prefix(64)) + "…" : shown
    return switch self {
    case .escapesRoot: "\(noun) '\(shown.escapingControlCharacters)' escapes the sandbox's root"
    case .containsNUL: "\(noun) '\(shown.escapingControlCharacters)' contains a NUL byte"
    case .tooLong: "\(noun) '\(shown.escapingControlCharacters)': file name too long"
    case .otherUsersHome: message
    }
  }
}

extension ProtocolPath {
  /// envd's `ExpandAndResolve`: empty means the user's home (the default workdir), `~`/`~/x`
  /// expand to the home, other relative paths are joined to the home; absolute paths stay as given.
  /// Unlike envd, `..` above `/` is refused rather than clamped, whatever the form.
  public static func expand(_ path: String, user: AgentUser) throws(PathExpansionError)
    -> ProtocolPath
  {
    guard !path.utf8.contains(0) else { throw .containsNUL(path: path) }
    var expanded = path
    if path.isEmpty {
      expanded = user.home
    } else if path.hasPrefix("~") {
      let rest = path.dropFirst()
      if let next = rest.first, next != "/", next != "\\" {
        throw .otherUsersHome(path: path, user: user.name)
      }
      guard let joined = goJoin(user.home, String(rest)) else { throw .escapesRoot(path: path) }
      expanded = joined
    } else if !path.hasPrefix("/") {
      guard let joined = goJoin(user.home, path) else { throw .escapesRoot(path: path) }
      expanded = joined
    }
    do {
      return try ProtocolPath(validating: expanded)
    } catch .escapesRoot {
      throw .escapesRoot(path: path)
    }
  }

  /// Go's `filepath.Join` (which cleans), except that `..` above `/` is nil, not `/`.
  static func goJoin(_ base: String, _ rest: String) -> String? {
    var parts: [Substring] = []
    for part in (base + "/" + rest).split(separator: "/") {
      if part == "." { continue }
      if part == ".." {
        if parts.isEmpty { return nil }
        parts.removeLast()
        continue
      }
      parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
  }
}

extension StringProtocol {
  /// For messages and log lines: control characters (NUL, newlines, ESC) as `\u{…}` escapes,
  /// so a hostile path cannot cut or forge a line.
  public var escapingControlCharacters: String {
    guard unicodeScalars.contains(where: \.isControlCharacter) else { return String(self) }
    var escaped = ""
    for scalar in unicodeScalars {
      if scalar.isControlCharacter {
        escaped += "\\u{" + String(scalar.value, radix: 16) + "}"
      } else {
        escaped.unicodeScalars.append(scalar)
      }
    }
    return escaped
  }
}

extension Unicode.Scalar {
  /// C0, DEL and C1.
  var isControlCharacter: Bool { value < 0x20 || (0x7f...0x9f).contains(value) }
}
