public enum RemoteFileType: Sendable, Equatable {
  case regular, directory, symlink, fifo, socket, characterDevice, blockDevice
}

/// Seconds and nanoseconds since the epoch, as a `timespec`.
public struct RemoteTime: Sendable, Hashable, Comparable {
  public var seconds: Int64
  public var nanoseconds: Int32

  public init(seconds: Int64, nanoseconds: Int32 = 0) {
    self.seconds = seconds
    self.nanoseconds = nanoseconds
  }

  public static func < (lhs: RemoteTime, rhs: RemoteTime) -> Bool {
    (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
  }
}

/// What a stat of a remote path tells. Fields a backend cannot know are nil.
public struct RemoteAttributes: Sendable, Equatable {
  public var type: RemoteFileType
  /// lstat size: for a symlink, the length of its text.
  public var size: UInt64
  /// Permission bits with setuid, setgid and sticky (07777); no type bits.
  public var permissions: UInt32
  public var modificationTime: RemoteTime
  public var accessTime: RemoteTime?
  public var changeTime: RemoteTime?
  public var owner: String?
  public var group: String?
  /// The raw link text when the backend knows it.
  public var symlinkTarget: String?
  /// The remote inode number (stable while the file exists), when known.
  public var inode: UInt64?
  /// st_nlink, when known.
  public var linkCount: UInt32?
  /// Numeric owner and group, when known (envd only gives names).
  public var uid: UInt32?
  public var gid: UInt32?
  /// st_blocks in 512-byte units, when known.
  public var blocks: UInt64?
  /// st_rdev of a device, when known.
  public var deviceNumber: UInt64?

  public init(
    type: RemoteFileType, size: UInt64, permissions: UInt32, modificationTime: RemoteTime,
    accessTime: RemoteTime? = nil, changeTime: RemoteTime? = nil, owner: String? = nil,
    group: String? = nil, symlinkTarget: String? = nil, inode: UInt64? = nil,
    linkCount: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, blocks: UInt64? = nil,
    deviceNumber: UInt64? = nil
  ) {
    self.inode = inode
    self.linkCount = linkCount
    self.uid = uid
    self.gid = gid
    self.blocks = blocks
    self.deviceNumber = deviceNumber
    self.type = type
    self.size = size
    self.permissions = permissions
    self.modificationTime = modificationTime
    self.accessTime = accessTime
    self.changeTime = changeTime
    self.owner = owner
    self.group = group
    self.symlinkTarget = symlinkTarget
  }

  /// Identifies one content of a file: a changed remote file has another version.
  public var version: RemoteFileVersion {
    RemoteFileVersion(size: size, modificationTime: modificationTime)
  }
}

public struct RemoteFileVersion: Sendable, Hashable {
  public var size: UInt64
  public var modificationTime: RemoteTime

  public init(size: UInt64, modificationTime: RemoteTime) {
    self.size = size
    self.modificationTime = modificationTime
  }
}

public struct RemoteEntry: Sendable, Equatable {
  public var name: String
  public var attributes: RemoteAttributes

  public init(name: String, attributes: RemoteAttributes) {
    self.name = name
    self.attributes = attributes
  }
}

public struct RemoteFilesystemStatistics: Sendable, Equatable {
  public var totalBytes: UInt64
  public var usedBytes: UInt64
  /// statvfs details when the backend knows them (nil: derive from the byte counts).
  public var blockSize: UInt64?
  public var totalBlocks: UInt64?
  public var freeBlocks: UInt64?
  public var availableBlocks: UInt64?
  public var totalFiles: UInt64?
  public var freeFiles: UInt64?
  public var availableFiles: UInt64?
  public var maximumNameLength: UInt64?

  public init(totalBytes: UInt64, usedBytes: UInt64) {
    self.totalBytes = totalBytes
    self.usedBytes = usedBytes
  }
}

extension RemoteFileType {
  /// The type in a `st_mode`'s S_IFMT bits (anything unknown reads as a regular file).
  public init(mode: UInt32) {
    switch mode & 0o170000 {
    case 0o040000: self = .directory
    case 0o120000: self = .symlink
    case 0o010000: self = .fifo
    case 0o140000: self = .socket
    case 0o020000: self = .characterDevice
    case 0o060000: self = .blockDevice
    default: self = .regular
    }
  }
}
