import Glibc

/// A file written beside its target and moved over it once complete. Anonymous (`O_TMPFILE`)
/// where the filesystem allows it, so an agent killed mid-write leaves nothing behind; it gets a
/// hidden name `.NAME.sandbox-agent-XXXXXX` only for the instant between link and rename. Where
/// `O_TMPFILE` is refused it has that name from the start. A class: placing it names it.
final class TemporaryFile {
  let descriptor: FileDescriptor
  /// The hidden name, once the file has one.
  private(set) var name: [CChar]?
  private let base: String

  /// Next to `entry`, owned by `owner` (nil: the agent) with `mode`.
  init(next entry: ResolvedEntry, owner: (uid_t, gid_t)?, mode: mode_t) throws(ErrnoError) {
    base =
      String(
        decoding: entry.name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self
      ).prefix(200).description
    var dot = Array(".".utf8CString)
    let anonymous = openat(entry.parent.raw, &dot, Self.tmpfile | O_WRONLY | O_CLOEXEC, 0o600)
    if anonymous >= 0 {
      descriptor = FileDescriptor(anonymous)
      name = nil
    } else {
      (descriptor, name) = try Self.named(
        in: entry.parent, base: base, path: entry.path.description)
    }
    // Owner first: a chown clears setuid and setgid. Not root: the creator owns it.
    if let owner { _ = fchown(descriptor.raw, owner.0, owner.1) }
    if fchmod(descriptor.raw, mode) != 0 {
      let failure = errno
      discard(in: entry.parent)
      throw ErrnoError(failure, entry.path.description)
    }
  }

  /// Moves the file over `target` in `directory` (or to it, if missing). An anonymous file
  /// whose target is missing is linked there at once: complete from its first instant, with one
  /// event for watchers instead of a hidden name's create and rename (three per file in rsync).
  func place(in directory: FileDescriptor, as target: [CChar], path: String, targetExists: Bool)
    throws(ErrnoError)
  {
    if name == nil {
      if !targetExists {
        if linkat(AT_FDCWD, procPath(descriptor), directory.raw, target, AT_SYMLINK_FOLLOW) == 0 {
          return
        }
        // Made meanwhile: replaced by a rename, as an existing target is.
        if errno != EEXIST { throw ErrnoError(errno, path) }
      }
      name = try link(into: directory, path: path)
    }
    try checked(renameat(directory.raw, name!, directory.raw, target), path)
    name = nil
  }

  /// Drops a file that was not placed: a named one is unlinked, an anonymous one goes with its
  /// descriptor.
  func discard(in directory: FileDescriptor) {
    if let name { unlinkat(directory.raw, name, 0) }
  }

  /// `O_TMPFILE` from linux/fcntl.h (`__O_TMPFILE | O_DIRECTORY`), which Swift does not import.
  private static let tmpfile: Int32 = 0o20_000_000 | O_DIRECTORY

  private static func hiddenName(_ base: String) -> [CChar] {
    let suffix = String(UInt64.random(in: 0..<(1 << 40)), radix: 36)
    return Array(".\(base).sandbox-agent-\(suffix)".utf8CString)
  }

  private static func named(in directory: FileDescriptor, base: String, path: String)
    throws(ErrnoError) -> (FileDescriptor, [CChar])
  {
    for _ in 0..<16 {
      var name = hiddenName(base)
      let fd = openat(
        directory.raw, &name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
      if fd >= 0 { return (FileDescriptor(fd), name) }
      if errno != EEXIST { throw ErrnoError(errno, path) }
    }
    throw ErrnoError(EEXIST, "no free temporary name next to \(path)")
  }

  /// Gives the anonymous file a hidden name (through /proc: `AT_EMPTY_PATH` needs a capability).
  private func link(into directory: FileDescriptor, path: String) throws(ErrnoError) -> [CChar] {
    for _ in 0..<16 {
      let name = Self.hiddenName(base)
      if linkat(AT_FDCWD, procPath(descriptor), directory.raw, name, AT_SYMLINK_FOLLOW) == 0 {
        return name
      }
      if errno != EEXIST { throw ErrnoError(errno, path) }
    }
    throw ErrnoError(EEXIST, "no free temporary name next to \(path)")
  }
}
