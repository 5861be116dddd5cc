/// A path as the protocol names it, after envd's `~`/relative expansion, checked not to leave the
/// root. `requested` is echoed back in answers (envd does not clean absolute paths); `components`
/// is the lexically cleaned form the jail opens.
public struct ProtocolPath: Sendable, Equatable, CustomStringConvertible {
  public let requested: String
  public let components: [String]

  /// Cleans `path` (absolute) lexically; nil when `..` would climb above the root.
  public init?(absolute path: String) {
    var parts: [String] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
      switch part {
      case ".": continue
      case "..":
        if parts.isEmpty { return nil }
        parts.removeLast()
      default: parts.append(String(part))
      }
    }
    requested = path
    components = parts
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

  public var message: String {
    switch self {
    case .otherUsersHome(let path, let user):
      "failed to expand path '\(path)' for user '\(user)': cannot expand user-specific home dir"
    case .escapesRoot(let path):
      "path '\(path)' escapes the served root"
    }
  }
}

extension ProtocolPath {
  /// envd's `ExpandAndResolve`: empty means the user's home (the default workdir), `~`/`~/x`
  /// expand to the home, other relative paths are joined to the home; absolute paths stay as given.
  public static func expand(_ path: String, user: AgentUser) throws(PathExpansionError)
    -> ProtocolPath
  {
    var expanded = path
    if path.isEmpty {
      expanded = user.home
    } else if path.hasPrefix("~") {
      let rest = path.dropFirst()
      if let next = rest.first, next != "/", next != "\\" {
        throw .otherUsersHome(path: path, user: user.name)
      }
      expanded = goJoin(user.home, String(rest))
    } else if !path.hasPrefix("/") {
      expanded = goJoin(user.home, path)
    }
    guard let result = ProtocolPath(absolute: expanded) else { throw .escapesRoot(path: path) }
    return result
  }

  /// Go's `filepath.Join` (which cleans); `..` cannot climb above `/` there.
  static func goJoin(_ base: String, _ rest: String) -> String {
    var parts: [Substring] = []
    for part in (base + "/" + rest).split(separator: "/") {
      if part == "." { continue }
      if part == ".." {
        if !parts.isEmpty { parts.removeLast() }
        continue
      }
      parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
  }
}
