import Foundation

/// A real `sandbox-mount` in the foreground (`-f`), mounted on `mountpoint`.
public final class RunningMount: @unchecked Sendable {
  public let child: ChildProcess
  public let mountpoint: String

  public init(
    url: String, mountpoint: String, arguments: [String] = [], environment: [String: String]? = nil
  ) throws {
    self.mountpoint = mountpoint
    // A journal of its own next to the mountpoint: a later test on a reused port must never
    // replay this one's changes.
    let stateArguments =
      arguments.contains("--state-dir") ? [] : ["--state-dir", mountpoint + ".state"]
    let child = try ChildProcess(
      executable: BuiltProducts.executable("sandbox-mount"),
      arguments: [url, mountpoint, "-f"] + stateArguments + arguments, environment: environment)
    self.child = child
    let mounted = child.waitFor(timeout: 30) { Self.isMounted(mountpoint) || !child.isRunning }
    guard mounted, Self.isMounted(mountpoint) else {
      child.stop(grace: 1)
      throw TestSupportError("mount did not appear: \(child.standardError)")
    }
  }

  public static func isMounted(_ mountpoint: String) -> Bool {
    let resolved = URL(fileURLWithPath: mountpoint).resolvingSymlinksInPath().path
    guard let table = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else {
      return false
    }
    return table.split(separator: "\n").contains { line in
      let fields = line.split(separator: " ")
      return fields.count > 2 && (fields[1] == mountpoint || fields[1] == resolved)
    }
  }

  /// Unmounts (lazily if busy) and stops the daemon; safe to call twice.
  public func unmount() {
    if Self.isMounted(mountpoint) {
      _ = try? runCommand(["fusermount3", "-u", mountpoint], timeout: 20)
      if Self.isMounted(mountpoint) {
        _ = try? runCommand(["fusermount3", "-uz", mountpoint], timeout: 20)
      }
    }
    child.stop()
  }

  deinit { unmount() }
}
