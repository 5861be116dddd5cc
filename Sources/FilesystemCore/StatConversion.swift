import Backend
import Glibc

extension FilesystemConfiguration {
  /// The `stat` the kernel sees for `attributes`: owner mapped to the mounting user (or
  /// `-o uid=,gid=`), nlink 1 for files and 2 for directories, 512-byte blocks.
  func stat(for attributes: RemoteAttributes, inode: UInt64) -> Glibc.stat {
    var result = Glibc.stat()
    result.st_ino = ino_t(inode)
    result.st_mode = Self.typeBits(attributes.type) | (attributes.permissions & 0o7777)
    result.st_nlink = attributes.type == .directory ? 2 : 1
    result.st_uid = ownerUID
    result.st_gid = ownerGID
    result.st_size = off_t(clamping: attributes.size)
    result.st_blocks = blkcnt_t(clamping: (attributes.size + 511) / 512)
    result.st_blksize = 4096
    let modified = Self.timespec(attributes.modificationTime)
    result.st_mtim = modified
    result.st_atim = attributes.accessTime.map(Self.timespec) ?? modified
    result.st_ctim = attributes.changeTime.map(Self.timespec) ?? modified
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
