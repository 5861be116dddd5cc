/// What a `setattr` asks to change; nil fields stay as they are.
public struct AttributeChanges: Sendable {
  public enum TimeChange: Sendable, Equatable {
    case now
    /// Seconds and nanoseconds since the epoch.
    case set(seconds: Int64, nanoseconds: Int32)
  }

  public var size: UInt64?
  /// Permission bits (07777).
  public var mode: UInt32?
  public var ownerUID: UInt32?
  public var ownerGID: UInt32?
  public var accessTime: TimeChange?
  public var modificationTime: TimeChange?

  public init(
    size: UInt64? = nil, mode: UInt32? = nil, ownerUID: UInt32? = nil, ownerGID: UInt32? = nil,
    accessTime: TimeChange? = nil, modificationTime: TimeChange? = nil
  ) {
    self.size = size
    self.mode = mode
    self.ownerUID = ownerUID
    self.ownerGID = ownerGID
    self.accessTime = accessTime
    self.modificationTime = modificationTime
  }

  /// Whether anything besides the size is asked for.
  var changesMetadata: Bool {
    mode != nil || ownerUID != nil || ownerGID != nil || accessTime != nil
      || modificationTime != nil
  }
}
