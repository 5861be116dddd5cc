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

  public init(
    type: RemoteFileType, size: UInt64, permissions: UInt32, modificationTime: RemoteTime,
    accessTime: RemoteTime? = nil, changeTime: RemoteTime? = nil, owner: String? = nil,
    group: String? = nil, symlinkTarget: String? = nil
  ) {
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
  public var version: RemoteFileVersion { RemoteFileVersion(size: size, modificationTime: modificationTime) }
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

  public init(totalBytes: UInt64, usedBytes: UInt64) {
    self.totalBytes = totalBytes
    self.usedBytes = usedBytes
  }
}
