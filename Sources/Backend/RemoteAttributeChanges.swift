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

/// How a backend names owners in its attributes.
public enum RemoteOwnerForm: Sendable, Equatable {
  /// Numeric uid and gid (the agent extension, or names mapped through the sandbox's tables).
  case ids
  /// User and group names only, which the mount cannot map.
  case names
  /// No owners at all.
  case none
}

/// What a backend can do natively, declared once after it connected. The filesystem core and
/// the data layer read these and emulate what is missing (rclone's `Features`), so no flag about
/// one vendor reaches them.
public struct RemoteCapabilities: Sendable, Equatable {
  /// `read(offset:length:)` fetches only that range. Without it every read costs the whole
  /// file, so the data layer downloads a file once and serves its blocks (`WholeFileReader`).
  public var rangedReads: Bool
  /// `writeRanges` patches a file in place; without it every change uploads the whole file.
  public var offsetWrites: Bool
  /// `rename` honours RENAME_NOREPLACE atomically and RENAME_EXCHANGE.
  public var atomicRenameFlags: Bool
  /// `link` makes real hard links.
  public var hardLinks: Bool
  /// `applyBatch` makes many changes in one round trip.
  public var batchChanges: Bool
  /// The backend can tell of changes made inside the sandbox.
  public var watch: Bool
  /// Attributes carry the remote inode number, the same for every name of a file.
  public var inodeNumbers: Bool
  /// Attributes carry nlink, atime, ctime and blocks for every stat. Without it those are
  /// derived, so a value never flips between a rich answer (a fallback's stat) and a plain one.
  public var richAttributes: Bool
  /// How attributes name owners.
  public var owners: RemoteOwnerForm
  /// A whole-file upload keeps the file's owner and mode (stock envd's chowns it to its user,
  /// which clears setuid and setgid).
  public var uploadKeepsOwnerAndMode: Bool
  /// The largest file one upload or download may move; nil: no limit.
  public var largestTransfer: UInt64?
  /// Changes are made under `CallerIdentity.current` when it is set (an agent running as root).
  public var actsAsCaller: Bool
  /// A short name for logs, e.g. "sandbox-agent extension v1" or "stock envd".
  public var description: String

  public init(
    rangedReads: Bool = false, offsetWrites: Bool = false, atomicRenameFlags: Bool = false,
    hardLinks: Bool = false, batchChanges: Bool = false, watch: Bool = false,
    inodeNumbers: Bool = false, richAttributes: Bool = false, owners: RemoteOwnerForm = .none,
    uploadKeepsOwnerAndMode: Bool = false, largestTransfer: UInt64? = nil,
    actsAsCaller: Bool = false, description: String = "basic"
  ) {
    self.rangedReads = rangedReads
    self.offsetWrites = offsetWrites
    self.atomicRenameFlags = atomicRenameFlags
    self.hardLinks = hardLinks
    self.batchChanges = batchChanges
    self.watch = watch
    self.inodeNumbers = inodeNumbers
    self.richAttributes = richAttributes
    self.owners = owners
    self.uploadKeepsOwnerAndMode = uploadKeepsOwnerAndMode
    self.largestTransfer = largestTransfer
    self.actsAsCaller = actsAsCaller
    self.description = description
  }
}
