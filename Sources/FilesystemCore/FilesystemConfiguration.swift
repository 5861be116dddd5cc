import Glibc

/// How the mounted tree is presented to the kernel.
public struct FilesystemConfiguration: Sendable {
  /// Owner shown for every file: the mounting user by default (like sshfs `idmap=user`), or
  /// `-o uid=N,gid=N`.
  public var ownerUID: UInt32
  public var ownerGID: UInt32
  /// `-o idmap=none`: show the remote numeric uid/gid (when the backend knows them) instead of
  /// `ownerUID`/`ownerGID`.
  public var showRemoteOwners = false
  /// `-o idmap=none` with a backend that makes changes as their caller (the agent as root):
  /// each request's uid, gid and groups go with the changes it makes (`CallerIdentity`).
  public var actAsCaller = false
  /// How long the kernel and our caches may trust an entry's attributes, in seconds.
  public var attributeTimeout: Double
  /// How long the kernel may trust a name → inode mapping, in seconds.
  public var entryTimeout: Double
  /// How long the kernel may trust that a name does not exist, in seconds (0: not at all).
  public var negativeTimeout: Double
  /// Refuses every change with EROFS (the kernel also does, with `-o ro`).
  public var readOnly: Bool
  /// Changes go to a local journal and reach the sandbox in the background: fsync must then
  /// wait for the drain (`RemoteFilesystem.synchronize`).
  public var writeBack = false
  /// Where staging files for writes live (`--cache-dir`, else `$TMPDIR`, else /tmp).
  public var stagingParent: String

  public init(
    ownerUID: UInt32 = getuid(), ownerGID: UInt32 = getgid(), attributeTimeout: Double = 1,
    entryTimeout: Double = 1, negativeTimeout: Double = 0, readOnly: Bool = false,
    stagingParent: String = "/tmp"
  ) {
    self.ownerUID = ownerUID
    self.ownerGID = ownerGID
    self.attributeTimeout = attributeTimeout
    self.entryTimeout = entryTimeout
    self.negativeTimeout = negativeTimeout
    self.readOnly = readOnly
    self.stagingParent = stagingParent
  }

  var attributeLifetime: Duration { .milliseconds(Int64(attributeTimeout * 1000)) }
}
