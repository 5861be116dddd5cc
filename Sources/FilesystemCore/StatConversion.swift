import Backend
import Glibc

extension FilesystemConfiguration {
  /// The `stat` the kernel sees for `attributes`.
  ///
  /// Owner policy: every file shows as the mounting user (or `-o uid=,gid=`), like sshfs
  /// `idmap=user`; with `-o idmap=none` and a backend that knows numeric ids, the remote ids.
  /// With remote inode numbers (the agent extension) st_ino is the remote's, so hard links
  /// share it and it stays the same across renames; otherwise it is the mount's own number for
  /// the path (stable while mounted). With write-back always the mount's own number: an entry
  /// made here has no remote number until the journal drains, and st_ino must not change
  /// under a running `tar` or `find`. nlink, blocks, atime and ctime are the remote's with rich
  /// attributes, else 1 (2 for directories), the size in 512-byte units, and the mtime.
  func stat(for attributes: RemoteAttributes, inode: UInt64, capabilities: RemoteCapabilities)
    -> Glibc.stat
  {
    var result = Glibc.stat()
    let rich = capabilities.richAttributes
    result.st_ino = ino_t(
      capabilities.inodeNumbers && !writeBack ? attributes.inode ?? inode : inode)
    result.st_mode = Self.typeBits(attributes.type) | (attributes.permissions & 0o7777)
    let defaultLinks: UInt32 = attributes.type == .directory ? 2 : 1
    result.st_nlink = nlink_t(rich ? attributes.linkCount ?? defaultLinks : defaultLinks)
    result.st_uid = showRemoteOwners ? attributes.uid ?? ownerUID : ownerUID
    result.st_gid = showRemoteOwners ? attributes.gid ?? ownerGID : ownerGID
    result.st_size = off_t(clamping: attributes.size)
    let derivedBlocks = (attributes.size + 511) / 512
    result.st_blocks = blkcnt_t(clamping: rich ? attributes.blocks ?? derivedBlocks : derivedBlocks)
    result.st_blksize = 4096
    // Stock envd's stat of a device is a process's, with the number, as the extension's.
    if let device = attributes.deviceNumber { result.st_rdev = dev_t(device) }
    let modified = Self.timespec(attributes.modificationTime)
    result.st_mtim = modified
    result.st_atim = rich ? attributes.accessTime.map(Self.timespec) ?? modified : modified
    result.st_ctim = rich ? attributes.changeTime.map(Self.timespec) ?? modified : modified
    return result
  }

  static func typeBits(_ type: RemoteFileType) -> mode_t {
    switch type {
    case .regular: S_IFREG
    case .directory: S_IFDIR
    case .symlink: S_IFLNK
    case .fifo: S_IFIFO
    case .socket: S_IFSOCK
    case .characterDevice: S_IFCHR
    case .blockDevice: S_IFBLK
    }
  }

  private static func timespec(_ time: RemoteTime) -> Glibc.timespec {
    Glibc.timespec(tv_sec: time_t(time.seconds), tv_nsec: Int(time.nanoseconds))
  }
}
