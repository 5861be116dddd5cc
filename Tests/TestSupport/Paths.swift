import Foundation

public enum BuiltProducts {
  /// The folder holding the test bundle, which also holds the built executables.
  public static var directory: String {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
      .deletingLastPathComponent().path
  }

  public static func executable(_ name: String) -> String { directory + "/" + name }
}

/// A fresh folder under the system temporary directory, removed by `remove()`.
public final class TemporaryDirectory: @unchecked Sendable {
  public let path: String

  public init(prefix: String = "sandbox-test") throws {
    let template = NSTemporaryDirectory() + "/\(prefix).XXXXXX"
    var bytes = Array(template.utf8CString)
    guard let made = mkdtemp(&bytes) else { throw TestSupportError("mkdtemp failed") }
    path = String(cString: made)
  }

  public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
