import Glibc

/// envd refuses to watch NFS, CIFS, SMB and FUSE mounts unless `allowNetworkMounts` is set
/// (inotify does not see changes made by other clients there).
enum NetworkMount {
  private static let magics: Set<Int> = [0x6969, 0xFF53_4D42, 0x517B, 0xFE53_4D42, 0x6573_5546]

  /// Whether the file system holding `fd` is one of those; false when it cannot be told.
  static func contains(_ fd: FileDescriptor) -> Bool {
    guard let fstatfs = fstatfsFunction else { return false }
    // struct statfs starts with `__fsword_t f_type` (a long) on 64-bit Linux.
    var buffer = [Int](repeating: 0, count: 32)
    guard buffer.withUnsafeMutableBytes({ fstatfs(fd.raw, $0.baseAddress!) }) == 0 else {
      return false
    }
    return magics.contains(buffer[0] & 0xFFFF_FFFF)
  }

  private typealias FstatfsFunction = @convention(c) (Int32, UnsafeMutableRawPointer) -> Int32
  /// Swift's Glibc module does not import <sys/vfs.h>.
  private static let fstatfsFunction: FstatfsFunction? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fstatfs") else { return nil }
    return unsafeBitCast(symbol, to: FstatfsFunction.self)
  }()
}
