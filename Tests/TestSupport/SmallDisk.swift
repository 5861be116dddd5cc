import Foundation
import XCTest

/// A tmpfs of `size` on a fresh folder, to fill a local disk on purpose. Needs root (mount);
/// other users skip the test.
public final class SmallDisk: @unchecked Sendable {
  public let path: String
  private let folder: TemporaryDirectory

  public init(size: String) throws {
    guard getuid() == 0 else { throw XCTSkip("mounting a tmpfs needs root") }
    folder = try TemporaryDirectory(prefix: "small-disk")
    path = folder.path
    let mounted = try runCommand(["/bin/mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
    guard mounted.status == 0 else {
      folder.remove()
      throw XCTSkip("cannot mount a tmpfs: \(mounted.error)")
    }
  }

  /// Lazily: a daemon that still holds files there must not keep the folder mounted.
  public func remove() {
    _ = try? runCommand(["/bin/umount", "-l", path])
    folder.remove()
  }
}
