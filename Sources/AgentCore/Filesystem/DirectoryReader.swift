import Glibc

/// Reads directory entry names as raw bytes (names need not be UTF-8).
enum DirectoryReader {
  /// Names in the directory `fd` refers to (an open, not `O_PATH`, descriptor), without `.` and
  /// `..`, sorted bytewise like Go's `os.ReadDir`.
  static func names(of fd: FileDescriptor, path: String) throws(SystemError) -> [[UInt8]] {
    let copy = dup(fd.raw)
    guard copy >= 0 else { throw SystemError("readdirent", path) }
    guard let stream = fdopendir(copy) else {
      let code = errno
      close(copy)
      throw SystemError("readdirent", path, code: code)
    }
    defer { closedir(stream) }
    rewinddir(stream)
    var names: [[UInt8]] = []
    while true {
      errno = 0
      guard let entry = readdir(stream) else {
        if errno != 0 { throw SystemError("readdirent", path) }
        break
      }
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        Array(raw.prefix { $0 != 0 })
      }
      if name == [0x2E] || name == [0x2E, 0x2E] { continue }
      names.append(name)
    }
    return names.sorted { $0.lexicographicallyPrecedes($1) }
  }
}
