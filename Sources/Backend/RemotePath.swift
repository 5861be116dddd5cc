/// Helpers for the absolute, `/`-separated paths the backend protocol uses.
public enum RemotePath {
  /// `/a` + `b` = `/a/b`; `/` + `b` = `/b`.
  public static func join(_ directory: String, _ name: String) -> String {
    directory == "/" ? "/" + name : directory + "/" + name
  }

  /// The parent of `/a/b` is `/a`; of `/a` and `/` it is `/`. On the UTF-8 view: a search by
  /// Character costs grapheme breaking, and every change through the mount asks this.
  public static func parent(of path: String) -> String {
    let bytes = path.utf8
    guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")), slash != bytes.startIndex else {
      return "/"
    }
    return String(path[..<slash])
  }

  /// The last component: `b` for `/a/b`, `/` for `/`.
  public static func name(of path: String) -> String {
    let bytes = path.utf8
    guard path != "/", let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return path }
    return String(path[bytes.index(after: slash)...])
  }
}
