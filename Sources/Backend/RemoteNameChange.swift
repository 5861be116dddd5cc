/// What a server answered to an operation that changes names (create, mkdir, link, rename):
/// the entry's new attributes and those of the directories that changed, so the mount patches
/// its caches in place instead of dropping them. nil: the server did not say.
public struct RemoteNameChange: Sendable, Equatable {
  /// The entry created, linked or moved.
  public var attributes: RemoteAttributes?
  /// The directory holding the entry after the change (for a rename: the source's directory).
  public var parent: RemoteAttributes?
  /// A rename into another directory: that directory after the change.
  public var destinationParent: RemoteAttributes?

  public init(
    attributes: RemoteAttributes? = nil, parent: RemoteAttributes? = nil,
    destinationParent: RemoteAttributes? = nil
  ) {
    self.attributes = attributes
    self.parent = parent
    self.destinationParent = destinationParent
  }
}

/// An entry after a create-like operation or an upload: its attributes, and its directory's
/// when the server told them (a create or an atomic replace changes the directory too).
public struct RemoteEntryState: Sendable, Equatable {
  public var attributes: RemoteAttributes
  public var parent: RemoteAttributes?

  public init(_ attributes: RemoteAttributes, parent: RemoteAttributes? = nil) {
    self.attributes = attributes
    self.parent = parent
  }
}
