import Glibc

/// `struct open_how` from linux/openat2.h.
struct OpenHow {
  var flags: UInt64
  var mode: UInt64
  var resolve: UInt64
}

enum ResolveFlags {
  static let noMagicLinks: UInt64 = 0x02
  static let inRoot: UInt64 = 0x10
}

/// openat2(2) has no glibc wrapper, and Swift cannot call the variadic `syscall`. On Linux
/// (x86_64 and aarch64 ABIs) integer arguments travel the same way for variadic and fixed
/// prototypes, and glibc's `syscall` is an assembly trampoline, so calling it through a fixed
/// prototype is sound there.
private typealias Openat2Syscall =
  @convention(c) (Int, Int32, UnsafePointer<CChar>, UnsafeRawPointer, Int) -> Int

private let openat2Syscall: Openat2Syscall = {
  guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "syscall") else {
    fatalError("syscall(2) not found in libc")
  }
  return unsafeBitCast(symbol, to: Openat2Syscall.self)
}()

#if arch(x86_64) || arch(arm64)
  /// Same number on every Linux architecture (the unified syscall table).
  private let sysOpenat2 = 437
#else
  #error("openat2 syscall number unknown for this architecture")
#endif

/// Opens `path` below `directory` as if `directory` were `/`: `..` and absolute symlinks
/// cannot leave it. Returns the fd or -1 with errno set. Retries EAGAIN, which the kernel
/// returns when a concurrent rename might have let a walk escape.
func openat2InRoot(directory: Int32, path: String, flags: Int32, mode: mode_t = 0) -> Int32 {
  var how = OpenHow(
    flags: UInt64(UInt32(bitPattern: flags | O_CLOEXEC)),
    mode: (flags & O_CREAT) != 0 ? UInt64(mode) : 0,
    resolve: ResolveFlags.inRoot | ResolveFlags.noMagicLinks)
  for _ in 0..<64 {
    let result = withUnsafePointer(to: &how) { howPointer in
      openat2Syscall(sysOpenat2, directory, path, howPointer, MemoryLayout<OpenHow>.size)
    }
    if result >= 0 { return Int32(result) }
    if errno != EAGAIN && errno != EINTR { return -1 }
  }
  return -1
}

/// Linux flags glibc only exposes under `_GNU_SOURCE`, which Swift's Glibc module lacks.
/// Same values on x86_64 and aarch64.
public enum LinuxFlags {
  public static let openPath: Int32 = 0o10000000  // O_PATH
  public static let atEmptyPath: Int32 = 0x1000  // AT_EMPTY_PATH
}
