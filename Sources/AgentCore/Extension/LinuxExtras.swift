import Glibc

/// Linux calls and constants glibc declares only under `_GNU_SOURCE`, which Swift's Glibc module
/// lacks. They are ordinary exported functions with fixed prototypes, so `dlsym` is sound.
enum LinuxExtras {
  /// `UTIME_NOW` and `UTIME_OMIT` from sys/stat.h.
  static let utimeNow = (1 << 30) - 1
  static let utimeOmit = (1 << 30) - 2

  /// `RENAME_NOREPLACE` and `RENAME_EXCHANGE` from linux/fs.h.
  static let renameNoReplace: UInt32 = 1
  static let renameExchange: UInt32 = 2

  private typealias Renameat2 =
    @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
  private typealias ErrorName = @convention(c) (Int32) -> UnsafePointer<CChar>?

  private typealias Syncfs = @convention(c) (Int32) -> Int32

  private static let renameat2Function: Renameat2? = symbol("renameat2")
  private static let syncfsFunction: Syncfs? = symbol("syncfs")
  private static let errorNameFunction: ErrorName? = symbol("strerrorname_np")

  private static func symbol<T>(_ name: String) -> T? {
    guard let address = dlsym(dlopen(nil, RTLD_NOW), name) else { return nil }
    return unsafeBitCast(address, to: T.self)
  }

  /// syncfs(2): flushes the filesystem holding `descriptor`; a plain sync(2) without it.
  static func syncfs(_ descriptor: Int32) -> Int32 {
    guard let syncfsFunction else {
      sync()
      return 0
    }
    return syncfsFunction(descriptor)
  }

  /// renameat2(2); ENOSYS where glibc is older than 2.28.
  static func renameat2(
    _ fromDirectory: Int32, _ from: UnsafePointer<CChar>, _ toDirectory: Int32,
    _ to: UnsafePointer<CChar>, _ flags: UInt32
  ) -> Int32 {
    guard let renameat2Function else {
      errno = ENOSYS
      return -1
    }
    return renameat2Function(fromDirectory, from, toDirectory, to, flags)
  }

  /// `ENOENT` for 2: glibc's `strerrorname_np` (2.32+), else `E<number>`.
  static func errorName(_ code: Int32) -> String {
    if let errorNameFunction, let name = errorNameFunction(code) { return String(cString: name) }
    return "E\(code)"
  }
}
