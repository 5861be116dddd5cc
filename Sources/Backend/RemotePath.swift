/// Helpers for the absolute, `/`-separated paths the backend protocol uses.
public enum RemotePath {
  /// `/a` + `b` = `/a/b`; `/` + `b` = `/b`.
  public static func join(_ directory: String, _ name: String) -> String {
    directory == "/" ? "/" + name : directory + "/" + name
  }

  /// The parent of `/a/b` is `/a`; of `/a` and `/` it is `/`.
  public static func parent(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
    return String(path[..<slash])
  }

  /// The last component: `b` for `/a/b`, `/` for `/`.
  public static func name(of path: String) -> String {
    guard path != "/", let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
  }
}
