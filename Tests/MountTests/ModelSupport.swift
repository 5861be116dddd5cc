import Foundation
import Glibc

/// SplitMix64: small, fast, and the same sequence for the same seed on every machine.
struct SeededGenerator: RandomNumberGenerator {
  private var state: UInt64
  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func bytes(_ count: Int) -> [UInt8] {
    var result = [UInt8]()
    result.reserveCapacity(count + 8)
    while result.count < count {
      withUnsafeBytes(of: next()) { result.append(contentsOf: $0) }
    }
    return Array(result.prefix(count))
  }
}

/// A time for utimensat: a fixed instant, now, or left alone.
enum ModelTime: CustomStringConvertible, Equatable {
  case at(seconds: Int, nanoseconds: Int)
  case now
  case omit

  // <sys/stat.h> defines these as macros Swift does not import.
  static let utimeNow = 0x3FFF_FFFF
  static let utimeOmit = 0x3FFF_FFFE

  var timespec: timespec {
    switch self {
    case .at(let seconds, let nanoseconds):
      return Glibc.timespec(tv_sec: seconds, tv_nsec: nanoseconds)
    case .now: return Glibc.timespec(tv_sec: 0, tv_nsec: Self.utimeNow)
    case .omit: return Glibc.timespec(tv_sec: 0, tv_nsec: Self.utimeOmit)
    }
  }

  var description: String {
    switch self {
    case .at(let seconds, let nanoseconds):
      return "\(seconds).\(String(format: "%09d", nanoseconds))"
    case .now: return "NOW"
    case .omit: return "OMIT"
    }
  }
}

/// One file operation, applied the same way to the mount and to a local folder.
enum ModelOperation: CustomStringConvertible {
  case create(path: String, mode: mode_t, flags: Int32)
  case write(path: String, offset: Int, bytes: [UInt8])
  case truncate(path: String, size: Int)
  case rename(from: String, to: String, flags: UInt32)
  case link(from: String, to: String)
  case unlink(path: String)
  case mkdir(path: String, mode: mode_t)
  case rmdir(path: String)
  case chmod(path: String, mode: mode_t)
  case utimens(path: String, atime: ModelTime, mtime: ModelTime, noFollow: Bool)
  case symlink(target: String, path: String)

  /// The operation's name: create, write, truncate, rename, link, unlink, mkdir, rmdir, chmod,
  /// utimens or symlink.
  var kind: String { String(description.prefix { $0 != " " }) }

  static let renameNoReplace: UInt32 = 1
  static let renameExchange: UInt32 = 2

  var description: String {
    func octal(_ mode: mode_t) -> String { String(mode, radix: 8) }
    switch self {
    case .create(let path, let mode, let flags):
      var names = ["O_CREAT"]
      if flags & O_EXCL != 0 { names.append("O_EXCL") }
      if flags & O_TRUNC != 0 { names.append("O_TRUNC") }
      return "create \(path) mode \(octal(mode)) \(names.joined(separator: "|"))"
    case .write(let path, let offset, let bytes):
      return "write \(path) at \(offset), \(bytes.count) bytes"
    case .truncate(let path, let size): return "truncate \(path) to \(size)"
    case .rename(let from, let to, let flags):
      let flag = [0: "", 1: " NOREPLACE", 2: " EXCHANGE"][flags] ?? " flags \(flags)"
      return "rename \(from) -> \(to)\(flag)"
    case .link(let from, let to): return "link \(from) -> \(to)"
    case .unlink(let path): return "unlink \(path)"
    case .mkdir(let path, let mode): return "mkdir \(path) mode \(octal(mode))"
    case .rmdir(let path): return "rmdir \(path)"
    case .chmod(let path, let mode): return "chmod \(path) \(octal(mode))"
    case .utimens(let path, let atime, let mtime, let noFollow):
      return
        "utimens \(path) atime \(atime) mtime \(mtime)\(noFollow ? " AT_SYMLINK_NOFOLLOW" : "")"
    case .symlink(let target, let path): return "symlink \(path) -> \"\(target)\""
    }
  }

  /// Runs the operation below `root` with plain system calls; "ok", "wrote N" or the errno's name.
  func apply(in root: String) -> String {
    func path(_ relative: String) -> String { root + "/" + relative }
    func outcome(_ status: Int32) -> String { status == 0 ? "ok" : errnoName(errno) }
    switch self {
    case .create(let relative, let mode, let flags):
      let descriptor = open(path(relative), O_WRONLY | O_CREAT | flags, mode)
      guard descriptor >= 0 else { return errnoName(errno) }
      return outcome(close(descriptor))
    case .write(let relative, let offset, let bytes):
      let descriptor = open(path(relative), O_WRONLY)
      guard descriptor >= 0 else { return errnoName(errno) }
      let written = bytes.withUnsafeBytes {
        pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset))
      }
      let writeError = errno
      let closed = close(descriptor)
      if written < 0 { return errnoName(writeError) }
      return closed == 0 ? "wrote \(written)" : "wrote \(written), close: \(errnoName(errno))"
    case .truncate(let relative, let size):
      return outcome(Glibc.truncate(path(relative), off_t(size)))
    case .rename(let from, let to, let flags):
      return outcome(Self.renameat2(AT_FDCWD, path(from), AT_FDCWD, path(to), flags))
    case .link(let from, let to): return outcome(Glibc.link(path(from), path(to)))
    case .unlink(let relative): return outcome(Glibc.unlink(path(relative)))
    case .mkdir(let relative, let mode): return outcome(Glibc.mkdir(path(relative), mode))
    case .rmdir(let relative): return outcome(Glibc.rmdir(path(relative)))
    case .chmod(let relative, let mode): return outcome(Glibc.chmod(path(relative), mode))
    case .utimens(let relative, let atime, let mtime, let noFollow):
      let times = [atime.timespec, mtime.timespec]
      return outcome(
        utimensat(AT_FDCWD, path(relative), times, noFollow ? AT_SYMLINK_NOFOLLOW : 0))
    case .symlink(let target, let relative): return outcome(Glibc.symlink(target, path(relative)))
    }
  }

  /// Glibc's renameat2 is declared only with _GNU_SOURCE, so Swift does not see it.
  private static func renameat2(
    _ fromDirectory: Int32, _ from: String, _ toDirectory: Int32, _ to: String, _ flags: UInt32
  ) -> Int32 {
    typealias Function =
      @convention(c) (
        Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32
      ) -> Int32
    guard let symbol = dlsym(nil, "renameat2") else {
      errno = ENOSYS
      return -1
    }
    return unsafeBitCast(symbol, to: Function.self)(fromDirectory, from, toDirectory, to, flags)
  }
}

func errnoName(_ code: Int32) -> String {
  let names: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EACCES: "EACCES", EBUSY: "EBUSY",
    EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL",
    EFBIG: "EFBIG", ENOSPC: "ENOSPC", EMLINK: "EMLINK", ENAMETOOLONG: "ENAMETOOLONG",
    ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", EOPNOTSUPP: "EOPNOTSUPP",
    ETXTBSY: "ETXTBSY", EROFS: "EROFS", ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT",
  ]
  return names[code] ?? "errno \(code) (\(String(cString: strerror(code))))"
}

/// What the model compares of one entry (lstat, never following the last component).
struct ModelEntry {
  var mode: mode_t
  var size: Int
  var nlink: Int
  var uid: uid_t
  var gid: gid_t
  var inode: UInt64
  var mtime: timespec
  var content: [UInt8]?
  var linkText: String?

  var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
}

enum ModelTree {
  /// The paths in the local tree down to depth 2, sorted (the generator picks from them).
  static func paths(_ root: String) -> [String] {
    var result: [String] = []
    let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    for name in names.sorted() {
      result.append(name)
      var info = stat()
      guard lstat(root + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
      let children = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + name)) ?? []
      result += children.sorted().map { name + "/" + $0 }
    }
    return result
  }

  /// Every entry below `root`, by relative path, read with lstat, readlink and read.
  static func snapshot(_ root: String) -> [String: ModelEntry] {
    var entries: [String: ModelEntry] = [:]
    func walk(_ relative: String) {
      let folder = relative.isEmpty ? root : root + "/" + relative
      guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
      for name in names {
        let child = relative.isEmpty ? name : relative + "/" + name
        let full = root + "/" + child
        var info = stat()
        guard lstat(full, &info) == 0 else { continue }
        var entry = ModelEntry(
          mode: info.st_mode, size: Int(info.st_size), nlink: Int(info.st_nlink), uid: info.st_uid,
          gid: info.st_gid, inode: UInt64(info.st_ino), mtime: info.st_mtim)
        switch info.st_mode & S_IFMT {
        case S_IFREG: entry.content = FileManager.default.contents(atPath: full).map { [UInt8]($0) }
        case S_IFLNK:
          entry.linkText = try? FileManager.default.destinationOfSymbolicLink(atPath: full)
        default: break
        }
        entries[child] = entry
        if info.st_mode & S_IFMT == S_IFDIR { walk(child) }
      }
    }
    walk("")
    return entries
  }

  /// Times before this were set explicitly by the model (it picks them from 2000 to 2020); later
  /// ones were set by the kernel ("now") and are only checked to be recent on both sides.
  static let explicitTimeCutoff = 1_609_459_200  // 2021-01-01

  /// The differences between the local tree (the truth) and `other`, one line each.
  /// `linkCounts` false: nlink and hard-link groups (inode numbers) are not compared.
  static func differences(
    local: [String: ModelEntry], other: [String: ModelEntry], otherName: String,
    linkCounts: Bool = true
  ) -> [String] {
    var result: [String] = []
    for path in Set(local.keys).union(other.keys).sorted() {
      guard let want = local[path] else {
        result.append("\(path): only in \(otherName) (mode \(String(other[path]!.mode, radix: 8)))")
        continue
      }
      guard let have = other[path] else {
        result.append("\(path): missing in \(otherName) (mode \(String(want.mode, radix: 8)))")
        continue
      }
      func check<T: Equatable>(_ what: String, _ expected: T, _ actual: T) {
        if expected != actual {
          result.append("\(path): \(what) \(actual) in \(otherName), \(expected) locally")
        }
      }
      check("mode", String(want.mode, radix: 8), String(have.mode, radix: 8))
      if !want.isDirectory { check("size", want.size, have.size) }
      if linkCounts { check("nlink", want.nlink, have.nlink) }
      check("uid", want.uid, have.uid)
      check("gid", want.gid, have.gid)
      check("link text", want.linkText, have.linkText)
      if want.content != have.content {
        result.append(
          "\(path): content differs in \(otherName) (\(have.content?.count ?? -1) bytes, first difference at \(firstDifference(want.content, have.content)))"
        )
      }
      let wantTime = "\(want.mtime.tv_sec).\(String(format: "%09d", want.mtime.tv_nsec))"
      let haveTime = "\(have.mtime.tv_sec).\(String(format: "%09d", have.mtime.tv_nsec))"
      if want.mtime.tv_sec < explicitTimeCutoff || have.mtime.tv_sec < explicitTimeCutoff {
        check("mtime", wantTime, haveTime)
      }
      // Hard links: the same set of paths shares an inode on both sides.
      let wantGroup = local.filter { $0.value.inode == want.inode }.keys.sorted()
      let haveGroup = other.filter { $0.value.inode == have.inode }.keys.sorted()
      if linkCounts { check("hard links", wantGroup, haveGroup) }
    }
    return result
  }

  private static func firstDifference(_ left: [UInt8]?, _ right: [UInt8]?) -> Int {
    guard let left, let right else { return 0 }
    return (0..<min(left.count, right.count)).first { left[$0] != right[$0] }
      ?? min(left.count, right.count)
  }
}
