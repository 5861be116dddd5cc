import Backend
import Foundation
import Logging
import TestSupport
import XCTest

@testable import FilesystemCore

/// The model test of MountTests, below FUSE: random operations applied to a local folder (the
/// truth) and to `Filesystem` over the in-memory backend, called as the kernel would call it.
/// Each result (ok or errno) must match, and after each seed the trees seen through
/// `Filesystem` (listings, stats, contents, hard-link groups) must too. Without a kernel there
/// is no symlink following, so symlinks (and UTIME_NOW) are left to the mount's model test.
///
/// `CORE_MODEL_SEEDS=N` (default 300) seeds of `CORE_MODEL_OPS=N` (default 100) operations;
/// `CORE_MODEL_SEED=N` replays one.
final class CoreModelTests: XCTestCase {
  /// Results per operation kind over all seeds, so a report shows what was exercised.
  private var outcomes: [String: Int] = [:]

  /// The core as over the agent extension: remote inode numbers and link counts.
  func testRandomOperationsAgreeWithLinux() async throws {
    try await runSeeds(richAttributes: true)
  }

  /// The core as over stock envd: its own inode numbers, link counts from the names it made.
  func testRandomOperationsAgreeWithLinuxWithoutRichAttributes() async throws {
    try await runSeeds(richAttributes: false)
  }

  private func runSeeds(richAttributes: Bool) async throws {
    let environment = ProcessInfo.processInfo.environment
    let count = environment["CORE_MODEL_OPS"].flatMap { Int($0) } ?? 100
    let seeds: [UInt64] =
      if let one = environment["CORE_MODEL_SEED"].flatMap({ UInt64($0) }) {
        [one]
      } else {
        Array(1...(environment["CORE_MODEL_SEEDS"].flatMap { UInt64($0) } ?? 300))
      }
    let start = ContinuousClock.now
    for seed in seeds {
      if let failure = try await run(seed: seed, operations: count, richAttributes: richAttributes)
      {
        XCTFail(
          "seed \(seed), rich attributes \(richAttributes) (replay: CORE_MODEL_SEED=\(seed)): \(failure)"
        )
        return
      }
    }
    print(
      "CoreModelTests outcomes: "
        + outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
          separator: ", "))
    print(
      "CoreModelTests (rich attributes: \(richAttributes)): \(seeds.count) seeds of \(count) operations in \(ContinuousClock.now - start)"
    )
  }

  /// nil when everything agreed, else what differed and the operations before.
  private func run(seed: UInt64, operations count: Int, richAttributes: Bool) async throws
    -> String?
  {
    let folder = try TemporaryDirectory(prefix: "core-model")
    defer { folder.remove() }
    let local = folder.path + "/local"
    mkdir(local, 0o755)
    mkdir(folder.path + "/staging", 0o755)
    let configuration = FilesystemConfiguration(
      attributeTimeout: 60, entryTimeout: 60, stagingParent: folder.path + "/staging")
    let capabilities =
      richAttributes
      ? InMemoryRemoteFilesystem.allCapabilities : InMemoryRemoteFilesystem.stockEnvdCapabilities
    let filesystem = try Filesystem(
      backend: InMemoryRemoteFilesystem(capabilities: capabilities), capabilities: capabilities,
      configuration: configuration,
      logger: Logger(label: "core-model") { _ in SwiftLogNoOpLogHandler() })
    let kernel = KernelStandIn(filesystem: filesystem)
    var generator = CoreModelGenerator(seed: seed)
    var history: [String] = []
    for index in 0..<count {
      let operation = generator.next(existing: localPaths(local))
      let truth = operation.apply(in: local)
      let seen = await kernel.apply(operation)
      history.append("#\(index) \(operation): \(truth) | \(seen)")
      outcomes["\(operation)".prefix { $0 != " " } + " " + truth, default: 0] += 1
      if truth != seen {
        return "operation #\(index) \(operation): \(seen) through Filesystem, \(truth) locally\n"
          + history.suffix(15).joined(separator: "\n")
      }
    }
    var want = localTree(local)
    let have = try await kernel.tree()
    if !richAttributes {
      // Without remote link counts a directory shows 2, by design (StatConversion).
      for (path, entry) in want where entry.mode & UInt32(S_IFMT) == UInt32(S_IFDIR) {
        want[path]!.nlink = 2
      }
    }
    guard want != have else { return nil }
    let differences = Set(want.keys).union(have.keys).sorted().filter { want[$0] != have[$0] }
      .prefix(8).map {
        "\($0): \(have[$0].map(String.init(describing:)) ?? "missing") through Filesystem, \(want[$0].map(String.init(describing:)) ?? "missing") locally"
      }
    return "the trees differ:\n" + differences.joined(separator: "\n") + "\n"
      + history.suffix(15).joined(separator: "\n")
  }

  /// The paths in the local tree, sorted, so replays pick the same.
  private func localPaths(_ root: String) -> [String] {
    (FileManager.default.subpaths(atPath: root) ?? []).sorted().map { "/" + $0 }
  }

  private func localTree(_ root: String) -> [String: CoreModelEntry] {
    var entries: [String: CoreModelEntry] = [:]
    func walk(_ relative: String) {
      let names = (try? FileManager.default.contentsOfDirectory(atPath: root + relative)) ?? []
      for name in names {
        let path = relative + "/" + name
        var info = stat()
        guard lstat(root + path, &info) == 0 else { continue }
        let isDirectory = info.st_mode & S_IFMT == S_IFDIR
        entries[path] = CoreModelEntry(
          mode: UInt32(info.st_mode), size: isDirectory ? 0 : Int(info.st_size),
          nlink: Int(info.st_nlink), inode: UInt64(info.st_ino),
          modified: CoreModelEntry.time(info.st_mtim),
          content: isDirectory
            ? nil : FileManager.default.contents(atPath: root + path).map { [UInt8]($0) })
        if isDirectory { walk(path) }
      }
    }
    walk("")
    return CoreModelEntry.withLinkGroups(entries)
  }
}

/// What is compared of one entry; `inode` only through `linkGroup` (numbers differ per side).
struct CoreModelEntry: Equatable, CustomStringConvertible {
  var mode: UInt32
  var size: Int
  var nlink: Int
  var inode: UInt64
  /// mtime as "seconds.nanoseconds".
  var modified: String
  var content: [UInt8]?
  /// The other paths sharing this entry's inode.
  var linkGroup: [String] = []

  /// Times before this (2021) were set by the model; later ones are "now" on either side.
  static let explicitTimeCutoff = "1609459200"

  static func == (left: Self, right: Self) -> Bool {
    let explicit = min(left.modified, right.modified) < explicitTimeCutoff
    return (left.mode, left.size, left.nlink, left.content, left.linkGroup)
      == (right.mode, right.size, right.nlink, right.content, right.linkGroup)
      && (!explicit || left.modified == right.modified)
  }

  static func time(_ time: timespec) -> String {
    "\(time.tv_sec).\(String(format: "%09d", time.tv_nsec))"
  }

  var description: String {
    "mode \(String(mode, radix: 8)) size \(size) nlink \(nlink) mtime \(modified) links \(linkGroup)"
      + " content \(content.map { "\($0.count) bytes, hash \($0.hashValue)" } ?? "none")"
  }

  static func withLinkGroups(_ entries: [String: Self]) -> [String: Self] {
    var result = entries
    for (path, entry) in entries where entry.mode & UInt32(S_IFMT) != UInt32(S_IFDIR) {
      result[path]!.linkGroup = entries.filter {
        $0.key != path && $0.value.inode == entry.inode
          && $0.value.mode & UInt32(S_IFMT) != UInt32(S_IFDIR)
      }.keys.sorted()
    }
    return result
  }
}

enum CoreModelOperation: CustomStringConvertible {
  case create(String, mode: UInt32, flags: Int32)
  case write(String, offset: Int, bytes: [UInt8])
  case truncate(String, size: Int)
  case rename(String, String, flags: UInt32)
  case link(String, String)
  case unlink(String)
  case mkdir(String, mode: UInt32)
  case rmdir(String)
  case chmod(String, mode: UInt32)
  /// utimensat with both times given (no UTIME_NOW, which has no exact answer to compare).
  case utimens(String, accessed: timespec, modified: timespec)

  var description: String {
    switch self {
    case .create(let path, let mode, let flags):
      "create \(path) mode \(String(mode, radix: 8))\(flags & O_EXCL != 0 ? " O_EXCL" : "")\(flags & O_TRUNC != 0 ? " O_TRUNC" : "")"
    case .write(let path, let offset, let bytes): "write \(path) at \(offset), \(bytes.count) bytes"
    case .truncate(let path, let size): "truncate \(path) to \(size)"
    case .rename(let from, let to, let flags): "rename \(from) -> \(to) flags \(flags)"
    case .link(let from, let to): "link \(from) -> \(to)"
    case .unlink(let path): "unlink \(path)"
    case .mkdir(let path, let mode): "mkdir \(path) mode \(String(mode, radix: 8))"
    case .rmdir(let path): "rmdir \(path)"
    case .chmod(let path, let mode): "chmod \(path) \(String(mode, radix: 8))"
    case .utimens(let path, let accessed, let modified):
      "utimens \(path) atime \(CoreModelEntry.time(accessed)) mtime \(CoreModelEntry.time(modified))"
    }
  }

  /// The operation with system calls below `root`: "ok" or the errno's name.
  func apply(in root: String) -> String {
    func outcome(_ status: Int32) -> String { status == 0 ? "ok" : errnoName(errno) }
    switch self {
    case .create(let path, let mode, let flags):
      let descriptor = open(root + path, O_WRONLY | O_CREAT | flags, mode_t(mode))
      guard descriptor >= 0 else { return errnoName(errno) }
      return outcome(close(descriptor))
    case .write(let path, let offset, let bytes):
      let descriptor = open(root + path, O_WRONLY)
      guard descriptor >= 0 else { return errnoName(errno) }
      defer { close(descriptor) }
      let written = bytes.withUnsafeBytes {
        pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset))
      }
      return written < 0 ? errnoName(errno) : "ok"
    case .truncate(let path, let size): return outcome(Glibc.truncate(root + path, off_t(size)))
    case .rename(let from, let to, let flags):
      return outcome(renameat2(AT_FDCWD, root + from, AT_FDCWD, root + to, flags))
    case .link(let from, let to): return outcome(Glibc.link(root + from, root + to))
    case .unlink(let path): return outcome(Glibc.unlink(root + path))
    case .mkdir(let path, let mode): return outcome(Glibc.mkdir(root + path, mode_t(mode)))
    case .rmdir(let path): return outcome(Glibc.rmdir(root + path))
    case .chmod(let path, let mode): return outcome(Glibc.chmod(root + path, mode_t(mode)))
    case .utimens(let path, let accessed, let modified):
      return outcome(utimensat(AT_FDCWD, root + path, [accessed, modified], 0))
    }
  }
}

/// Calls `Filesystem` as the kernel's VFS would for each system call: lookups component by
/// component, the checks the VFS makes itself (EEXIST, EISDIR, EPERM), the umask.
struct KernelStandIn {
  let filesystem: Filesystem
  let root = InodeTable.rootInode
  let umask: UInt32 = {
    let mask = Glibc.umask(0)
    Glibc.umask(mask)
    return UInt32(mask)
  }()

  func apply(_ operation: CoreModelOperation) async -> String {
    do {
      try await perform(operation)
      return "ok"
    } catch {
      return errnoName(errnoCode(for: error))
    }
  }

  private func perform(_ operation: CoreModelOperation) async throws {
    switch operation {
    case .create(let path, let mode, let flags):
      let (parent, name) = try await parentOf(path)
      if let existing = try await existing(parent, name) {
        if flags & O_EXCL != 0 { throw RemoteError(errno: EEXIST, path) }
        if isDirectory(existing) { throw RemoteError(errno: EISDIR, path) }
        let opened = try await filesystem.open(existing.inode, flags: O_WRONLY | flags)
        try await filesystem.flush(handle: opened.handle)
        try await filesystem.release(handle: opened.handle)
        return
      }
      let (_, opened) = try await filesystem.create(
        parent: parent, name: name, mode: mode & ~umask, flags: O_WRONLY | O_CREAT | flags)
      try await filesystem.flush(handle: opened.handle)
      try await filesystem.release(handle: opened.handle)
    case .write(let path, let offset, let bytes):
      let entry = try await resolve(path)
      if isDirectory(entry) { throw RemoteError(errno: EISDIR, path) }
      let opened = try await filesystem.open(entry.inode, flags: O_WRONLY)
      _ = try bytes.withUnsafeBytes {
        try filesystem.write(handle: opened.handle, bytes: $0, offset: UInt64(offset))
      }
      try await filesystem.flush(handle: opened.handle)
      try await filesystem.release(handle: opened.handle)
    case .truncate(let path, let size):
      let entry = try await resolve(path)
      if isDirectory(entry) { throw RemoteError(errno: EISDIR, path) }
      _ = try await filesystem.setAttributes(
        of: entry.inode, handle: nil, changes: AttributeChanges(size: UInt64(size)))
    case .rename(let from, let to, let flags):
      let (sourceParent, sourceName) = try await parentOf(from)
      let (destinationParent, destinationName) = try await parentOf(to)
      try await filesystem.rename(
        parent: sourceParent, name: sourceName, newParent: destinationParent,
        newName: destinationName, flags: flags)
    case .link(let from, let to):
      let source = try await resolve(from)
      let (parent, name) = try await parentOf(to)
      if try await existing(parent, name) != nil { throw RemoteError(errno: EEXIST, to) }
      if isDirectory(source) { throw RemoteError(errno: EPERM, from) }
      _ = try await filesystem.makeLink(source.inode, newParent: parent, newName: name)
    case .unlink(let path):
      let (parent, name) = try await parentOf(path)
      try await filesystem.removeFile(parent: parent, name: name)
    case .mkdir(let path, let mode):
      let (parent, name) = try await parentOf(path)
      if try await existing(parent, name) != nil { throw RemoteError(errno: EEXIST, path) }
      // vfs_mkdir passes on permissions and sticky only (setgid comes from the parent).
      _ = try await filesystem.makeDirectory(
        parent: parent, name: name, mode: mode & ~umask & (0o777 | UInt32(S_ISVTX)))
    case .rmdir(let path):
      let (parent, name) = try await parentOf(path)
      try await filesystem.removeDirectory(parent: parent, name: name)
    case .chmod(let path, let mode):
      let entry = try await resolve(path)
      _ = try await filesystem.setAttributes(
        of: entry.inode, handle: nil, changes: AttributeChanges(mode: mode & 0o7777))
    case .utimens(let path, let accessed, let modified):
      let entry = try await resolve(path)
      _ = try await filesystem.setAttributes(
        of: entry.inode, handle: nil,
        changes: AttributeChanges(
          accessTime: .set(seconds: Int64(accessed.tv_sec), nanoseconds: Int32(accessed.tv_nsec)),
          modificationTime: .set(
            seconds: Int64(modified.tv_sec), nanoseconds: Int32(modified.tv_nsec))))
    }
  }

  private func isDirectory(_ entry: Entry) -> Bool { entry.attributes.st_mode & S_IFMT == S_IFDIR }

  /// Path walk: every component but the last must be a directory.
  private func resolve(_ path: String) async throws -> Entry {
    let (parent, name) = try await parentOf(path)
    return try await filesystem.lookUp(parent: parent, name: name)
  }

  private func parentOf(_ path: String) async throws -> (UInt64, String) {
    var components = path.split(separator: "/").map(String.init)
    let name = components.removeLast()
    var inode = root
    for component in components {
      let entry = try await filesystem.lookUp(parent: inode, name: component)
      guard isDirectory(entry) else { throw RemoteError(errno: ENOTDIR, path) }
      inode = entry.inode
    }
    return (inode, name)
  }

  private func existing(_ parent: UInt64, _ name: String) async throws -> Entry? {
    do {
      return try await filesystem.lookUp(parent: parent, name: name)
    } catch let error as RemoteError where error.errno == ENOENT {
      return nil
    }
  }

  /// Every entry as `Filesystem` shows it: listings, stats, and contents read through it.
  func tree() async throws -> [String: CoreModelEntry] {
    var entries: [String: CoreModelEntry] = [:]
    func walk(_ inode: UInt64, _ relative: String) async throws {
      let handle = try filesystem.openDirectory(inode).handle
      defer { filesystem.releaseDirectory(handle) }
      for child in try await filesystem.readDirectory(inode: inode, handle: handle, offset: 0)
      where !child.isDotEntry {
        let path = relative + "/" + child.name
        let info = try await filesystem.attributes(of: child.inode)
        let isDirectory = info.st_mode & S_IFMT == S_IFDIR
        var content: [UInt8]?
        if !isDirectory {
          let opened = try await filesystem.open(child.inode, flags: O_RDONLY)
          content = Array(
            try await filesystem.read(
              handle: opened.handle, offset: 0, length: Int(info.st_size) + 1))
          try await filesystem.release(handle: opened.handle)
        }
        entries[path] = CoreModelEntry(
          mode: UInt32(info.st_mode), size: isDirectory ? 0 : Int(info.st_size),
          nlink: Int(info.st_nlink), inode: UInt64(info.st_ino),
          modified: CoreModelEntry.time(info.st_mtim), content: content)
        if isDirectory { try await walk(child.inode, path) }
      }
    }
    try await walk(root, "")
    return CoreModelEntry.withLinkGroups(entries)
  }
}

/// A few names at depth two, so operations collide often.
struct CoreModelGenerator {
  private var random: SplitMix
  static let names = ["a", "b", "c", "d"]

  init(seed: UInt64) { random = SplitMix(state: seed) }

  private mutating func number(_ range: Range<Int>) -> Int { Int.random(in: range, using: &random) }
  private mutating func pick<T>(_ choices: [T]) -> T { choices[number(0..<choices.count)] }

  private mutating func path() -> String {
    number(0..<100) < 45 ? "/" + pick(Self.names) : "/" + pick(Self.names) + "/" + pick(Self.names)
  }

  /// 2000 to 2020: before `CoreModelEntry.explicitTimeCutoff`, so trees compare it.
  private mutating func time() -> timespec {
    timespec(tv_sec: number(946_684_800..<1_577_836_800), tv_nsec: number(0..<1_000_000_000))
  }

  /// Half the time a path that exists, so that more operations succeed.
  private mutating func target(_ existing: [String]) -> String {
    existing.isEmpty || number(0..<2) == 0 ? path() : pick(existing)
  }

  mutating func next(existing: [String]) -> CoreModelOperation {
    switch number(0..<100) {
    case 0..<16:
      return .create(
        path(), mode: pick([0o644, 0o600, 0o755, 0o4755]), flags: pick([0, O_EXCL, O_TRUNC]))
    case 16..<32:
      let bytes = (0..<number(0..<3000)).map { _ in UInt8(number(0..<256)) }
      return .write(target(existing), offset: pick([0, number(0..<5000)]), bytes: bytes)
    case 32..<38: return .truncate(target(existing), size: pick([0, number(0..<6000)]))
    case 38..<52: return .rename(target(existing), target(existing), flags: pick([0, 0, 0, 1, 2]))
    case 52..<60: return .link(target(existing), path())
    case 60..<70: return .unlink(target(existing))
    case 70..<82: return .mkdir(path(), mode: pick([0o755, 0o700, 0o2775]))
    case 82..<88: return .rmdir(target(existing))
    case 88..<94:
      return .utimens(target(existing), accessed: time(), modified: time())
    default: return .chmod(target(existing), mode: pick([0o644, 0o600, 0o755, 0o000, 0o6755]))
    }
  }
}

/// SplitMix64, as MountTests' model: the same sequence for a seed on every machine.
struct SplitMix: RandomNumberGenerator {
  var state: UInt64

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

func errnoName(_ code: Int32) -> String {
  let names: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EACCES: "EACCES",
    EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL",
    ENOTEMPTY: "ENOTEMPTY", EOPNOTSUPP: "EOPNOTSUPP", EBUSY: "EBUSY",
  ]
  return names[code] ?? "errno \(code)"
}

/// Glibc declares renameat2 only with _GNU_SOURCE, so Swift does not see it.
func renameat2(
  _ fromDirectory: Int32, _ from: String, _ toDirectory: Int32, _ to: String, _ flags: UInt32
) -> Int32 {
  typealias Function =
    @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
  guard let symbol = dlsym(nil, "renameat2") else {
    errno = ENOSYS
    return -1
  }
  return unsafeBitCast(symbol, to: Function.self)(fromDirectory, from, toDirectory, to, flags)
}
