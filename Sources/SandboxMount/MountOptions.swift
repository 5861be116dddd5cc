import Foundation

/// `-o opt,...` split into what we handle ourselves and what goes to libfuse and the kernel.
struct MountOptions {
  var ownerUID: UInt32?
  var ownerGID: UInt32?
  /// `idmap=none`: the remote numeric owners; `idmap=user` (default): the mounting user.
  var showRemoteOwners = false
  var readOnly = false
  var debug = false
  /// For libfuse: fsname, subtype, allow_other, default_permissions, ro, …
  var passedThrough: [String] = []

  /// `uid=`, `gid=` and `idmap=` are ours (libfuse3's low-level API does not know them); `ro` is also
  /// remembered so the core refuses changes with EROFS itself.
  init(_ lists: [String]) throws {
    for option in lists.flatMap({ $0.split(separator: ",") }).map(String.init) {
      let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
      let value = parts.count > 1 ? parts[1] : nil
      switch parts[0] {
      case "uid": ownerUID = try Self.number(option, value)
      case "gid": ownerGID = try Self.number(option, value)
      case "idmap":
        switch value {
        case "none": showRemoteOwners = true
        case "user": showRemoteOwners = false
        default: throw MountFailure("option '\(option)': idmap is 'user' (default) or 'none'")
        }
      case "debug": debug = true
      case "ro":
        readOnly = true
        passedThrough.append(option)
      default: passedThrough.append(option)
      }
    }
    if !passedThrough.contains(where: { $0.hasPrefix("fsname=") }) {
      passedThrough.append("fsname=sandbox-mount")
    }
    if !passedThrough.contains(where: { $0.hasPrefix("subtype=") }) {
      passedThrough.append("subtype=sandbox")
    }
  }

  private static func number(_ option: String, _ value: String?) throws -> UInt32 {
    guard let value, let number = UInt32(value) else {
      throw MountFailure("option '\(option)' needs a number, e.g. uid=1000")
    }
    return number
  }
}

/// A one-line reason for not mounting, printed as `sandbox-mount: <message>`.
struct MountFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
