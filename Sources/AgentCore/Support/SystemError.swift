import Glibc

/// A failed system call on a protocol path, worded like Go's `*fs.PathError`
/// ("lstat /x: no such file or directory") because clients classify envd errors by that text.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
  public var operation: String
  public var path: String
  public var code: Int32

  public init(_ operation: String, _ path: String, code: Int32 = errno) {
    self.operation = operation
    self.path = path
    self.code = code
  }

  /// Go's errno text: glibc's strerror with a lower-case first letter.
  public var reason: String { Self.reason(code) }

  public static func reason(_ code: Int32) -> String {
    let text = String(cString: strerror(code))
    guard let first = text.first else { return text }
    return first.lowercased() + text.dropFirst()
  }

  public var description: String { "\(operation) \(path): \(reason)" }
}

/// A file descriptor closed when the last reference goes away.
public final class FileDescriptor: Sendable {
  public let raw: Int32
  public init(_ raw: Int32) { self.raw = raw }
  deinit { close(raw) }
}
