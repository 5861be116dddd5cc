import Foundation

/// Where write-back keeps its journal: one folder per sandbox URL and remote root, so the next
/// mount of the same sandbox finds what the last one did not apply. Held with a lock for the
/// life of the mount: two daemons never share a journal.
struct StateFolder {
  let path: String
  private let lockDescriptor: Int32

  /// `$XDG_STATE_HOME/sandbox-mount`, else `~/.local/state/sandbox-mount`.
  static var base: String {
    let environment = ProcessInfo.processInfo.environment
    if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
      return state + "/sandbox-mount"
    }
    let home = environment["HOME"] ?? NSHomeDirectory()
    return home + "/.local/state/sandbox-mount"
  }

  static func defaultPath(url: String, root: String) -> String {
    let readable = url.replacingOccurrences(of: "://", with: "-").map {
      $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_"
    }
    return base + "/" + String(readable.prefix(64)) + "-" + hash(url + "|" + root)
  }

  /// Where the daemon serving `mountpoint` answers `status`: under the base folder, named by the
  /// mountpoint, so `sandbox-mount status MOUNTPOINT` finds it whatever --state-dir was.
  static func controlSocket(forMountpoint mountpoint: String) -> String {
    base + "/mounts/" + hash(mountpoint) + ".sock"
  }

  static func open(explicit: String?, url: String, root: String) throws -> StateFolder {
    let path = explicit ?? defaultPath(url: url, root: root)
    do {
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
      throw MountFailure("cannot make the state folder \(path): \(error.localizedDescription)")
    }
    let descriptor = Glibc.open(path + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw MountFailure("cannot use the state folder \(path): \(String(cString: strerror(errno)))")
    }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      close(descriptor)
      throw MountFailure(
        "the state folder \(path) is in use by another sandbox-mount of the same sandbox and root; unmount it first, or pass --state-dir"
      )
    }
    return StateFolder(path: path, lockDescriptor: descriptor)
  }

  /// FNV-1a, 64 bits, as hex: stable across runs and builds (Swift's hashValue is not).
  static func hash(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return String(hash, radix: 16)
  }
}
