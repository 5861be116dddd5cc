import Foundation

/// Checks made before anything is mounted; each failure is one line for a person.
enum Preflight {
  /// `http://host:port` or `https://host`, with nothing the backend would ignore silently.
  static func checkURL(_ text: String) throws {
    guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
      scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
    else {
      throw MountFailure("invalid URL '\(text)': expected http://HOST:PORT or https://HOST")
    }
    if let query = url.query, !query.isEmpty {
      throw MountFailure("invalid URL '\(text)': a query string is not supported")
    }
  }

  /// The mountpoint as an absolute path, after checking it is an existing directory that is not
  /// already mounted.
  static func checkMountpoint(_ path: String) throws -> String {
    var info = stat()
    guard stat(path, &info) == 0 else {
      let code = errno
      if code == ENOTCONN {
        throw MountFailure(
          "mountpoint \(path) is a stale mount (its daemon is gone); run: fusermount3 -u \(path)")
      }
      throw MountFailure("mountpoint \(path): \(String(cString: strerror(code)))")
    }
    guard (info.st_mode & S_IFMT) == S_IFDIR else {
      throw MountFailure("mountpoint \(path) is not a directory")
    }
    guard let resolved = realpath(path, nil) else {
      throw MountFailure("mountpoint \(path): \(String(cString: strerror(errno)))")
    }
    defer { free(resolved) }
    let absolute = String(cString: resolved)
    if let mounted = mountedFilesystem(at: absolute) {
      throw MountFailure("mountpoint \(path) is already mounted (\(mounted)); unmount it first")
    }
    return absolute
  }

  /// The type of what /proc/mounts lists at `path`, if anything.
  static func mountedFilesystem(at path: String) -> String? {
    guard let table = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else {
      return nil
    }
    for line in table.split(separator: "\n") {
      let fields = line.split(separator: " ")
      if fields.count > 2, unescape(fields[1]) == path { return String(fields[2]) }
    }
    return nil
  }

  /// /proc/mounts writes space, tab, newline and backslash as `\ooo` octal escapes.
  private static func unescape(_ field: Substring) -> String {
    guard field.contains("\\") else { return String(field) }
    var bytes: [UInt8] = []
    var index = field.utf8.startIndex
    let utf8 = field.utf8
    while index < utf8.endIndex {
      let byte = utf8[index]
      if byte == UInt8(ascii: "\\"), utf8.distance(from: index, to: utf8.endIndex) >= 4,
        let value = UInt8(
          String(
            decoding: utf8[utf8.index(after: index)..<utf8.index(index, offsetBy: 4)], as: UTF8.self
          ),
          radix: 8)
      {
        bytes.append(value)
        index = utf8.index(index, offsetBy: 4)
      } else {
        bytes.append(byte)
        index = utf8.index(after: index)
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  static func checkReadable(_ path: String, what: String) throws {
    guard access(path, R_OK) == 0 else {
      throw MountFailure("cannot read the \(what) \(path): \(String(cString: strerror(errno)))")
    }
  }

  /// The token `--token-file` holds, trimmed; nil without the option.
  static func tokenFile(_ file: String?) throws -> String? {
    guard let file else { return nil }
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
      throw MountFailure("cannot read the token file \(file)")
    }
    let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !token.isEmpty else { throw MountFailure("the token file \(file) is empty") }
    return token
  }

  /// The name of `scheme://NAME` (letters, digits, `-`, `_`, `.`), or nil for another scheme.
  /// `form` is the URL's shape for the error, e.g. `vercel://SANDBOX_NAME`.
  static func name(of url: String, scheme: String, form: String) throws -> String? {
    guard url.lowercased().hasPrefix(scheme + "://") else { return nil }
    var name = Substring(url.dropFirst(scheme.count + 3))
    if name.hasSuffix("/") { name = name.dropLast() }
    guard !name.isEmpty,
      name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
    else {
      throw MountFailure("invalid URL '\(url)': expected \(form) (letters, digits, -, _ or .)")
    }
    return String(name)
  }

  /// The access token from `--token-file`, else `$SANDBOX_TOKEN`, else none.
  static func token(file: String?) throws -> String? {
    if let token = try tokenFile(file) { return token }
    if let token = ProcessInfo.processInfo.environment["SANDBOX_TOKEN"], !token.isEmpty {
      return token
    }
    return nil
  }
}

extension Preflight {
  /// A token over plain `http://` is readable by anyone on the path; loopback never leaves the
  /// host. `--insecure` sends it anyway.
  static func refuseCleartextToken(to url: String, insecure: Bool) throws {
    guard !insecure, let parsed = URL(string: url), parsed.scheme?.lowercased() == "http",
      let host = parsed.host, !isLoopback(host)
    else { return }
    let port = parsed.port.map { ":\($0)" } ?? ""
    throw MountFailure(
      "refusing to send the token in the clear to http://\(host)\(port) (not loopback): use https://, or --insecure"
    )
  }

  /// An IPv4 or IPv6 address literal (brackets allowed), not a name.
  static func isAddress(_ host: String) -> Bool {
    let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1
  }

  /// `localhost` and its subdomains (curl resolves them to loopback), 127.0.0.0/8 and ::1.
  static func isLoopback(_ host: String) -> Bool {
    let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    if name == "localhost" || name.hasSuffix(".localhost") || name == "::1" { return true }
    let octets = name.split(separator: ".", omittingEmptySubsequences: false)
    return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
  }
}
