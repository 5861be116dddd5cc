/// A time a `setAttributes` sets: now (`UTIME_NOW`) or a given instant. Absent means `UTIME_OMIT`.
public enum RemoteTimeChange: Sendable, Equatable {
  case now
  case set(RemoteTime)
}

/// What `setAttributes` changes; nil fields stay as they are.
public struct RemoteAttributeChanges: Sendable, Equatable {
  /// Permission bits with setuid, setgid and sticky (07777); type bits are ignored.
  public var mode: UInt32?
  public var uid: UInt32?
  public var gid: UInt32?
  /// truncate(2) to this size (shrink or extend, same inode).
  public var size: UInt64?
  public var accessTime: RemoteTimeChange?
  public var modificationTime: RemoteTimeChange?

  public init(
    mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
    accessTime: RemoteTimeChange? = nil, modificationTime: RemoteTimeChange? = nil
  ) {
    self.mode = mode
    self.uid = uid
    self.gid = gid
    self.size = size
    self.accessTime = accessTime
    self.modificationTime = modificationTime
  }

  public var isEmpty: Bool { self == RemoteAttributeChanges() }
}

/// renameat2(2) flags.
public struct RemoteRenameFlags: OptionSet, Sendable, Hashable {
  public let rawValue: UInt32
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  /// RENAME_NOREPLACE: EEXIST if the destination exists.
  public static let noReplace = RemoteRenameFlags(rawValue: 1)
  /// RENAME_EXCHANGE: swap two existing entries atomically.
  public static let exchange = RemoteRenameFlags(rawValue: 2)
}

/// What a backend can do beyond the basic protocol, so the mount can choose and report.
public struct RemoteCapabilities: Sendable, Equatable {
  /// Attributes carry numeric uid/gid, inode numbers, nlink, atime and ctime.
  public var richAttributes: Bool
  /// `link` makes real hard links.
  public var hardLinks: Bool
  /// `rename` honours RENAME_NOREPLACE atomically and RENAME_EXCHANGE.
  public var atomicRenameFlags: Bool
  /// Changes are made under `CallerIdentity.current` when it is set (an agent running as root).
  public var actsAsCaller: Bool
  /// A short name for logs, e.g. "sandbox-agent extension v1" or "stock envd".
  public var description: String

  public init(
    richAttributes: Bool = false, hardLinks: Bool = false, atomicRenameFlags: Bool = false,
    actsAsCaller: Bool = false, description: String = "basic"
  ) {
    self.richAttributes = richAttributes
    self.hardLinks = hardLinks
    self.atomicRenameFlags = atomicRenameFlags
    self.actsAsCaller = actsAsCaller
    self.description = description
  }
}
