import Backend

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// POSIX operations for any sandbox that can run commands: each is one job of `ExecScript`
/// (bursts share one process, `ExecRunner`), with the errno coreutils' message names. A backend
/// with whole-file transfers and an executor gets the rest of `RemoteFilesystem` from here, as
/// the vendors' own SDKs build stat, list, remove and rename from `stat`, `find`, `rm` and `mv`.
/// Changes run as `CallerIdentity.current` where the sandbox lets them (root and `setpriv`).
public struct ExecFilesystem: Sendable {
  public let runner: ExecRunner
  /// The path a command in the sandbox uses for a path of the mount.
  public let sandboxPath: @Sendable (String) -> String

  public init(
    executor: any ProcessExecutor, sandboxPath: @escaping @Sendable (String) -> String = { $0 }
  ) {
    self.init(runner: ExecRunner(executor: executor), sandboxPath: sandboxPath)
  }

  public init(runner: ExecRunner, sandboxPath: @escaping @Sendable (String) -> String = { $0 }) {
    self.runner = runner
    self.sandboxPath = sandboxPath
  }

  /// Runs one job on `path` and returns the attributes its final `.stat` printed.
  public func run(_ path: String, _ steps: [ExecScript.Step], context: String) async throws
    -> RemoteAttributes
  {
    try await runner.run(sandboxPath(path), steps).attributes(context: context)
  }

  /// Runs one job on `path` that prints nothing, and throws its errno.
  public func check(_ path: String, _ steps: [ExecScript.Step], context: String) async throws {
    try await runner.run(sandboxPath(path), steps).check(context: context)
  }

  public func attributes(of path: String) async throws -> RemoteAttributes {
    try await run(path, [.stat], context: "stat \(path)")
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    let context = "list \(path)"
    let result = try await runner.run(sandboxPath(path), [.list])
    try result.check(context: context)
    return result.entries.compactMap(ExecOutput.entry)
  }

  public func removeFile(_ path: String) async throws {
    try await check(path, [.unlink], context: "unlink \(path)")
  }

  public func removeDirectory(_ path: String) async throws {
    let context = "rmdir \(path)"
    if path == "/" {
      throw RemoteError(errno: EBUSY, "\(context): the mount root cannot be removed")
    }
    try await check(path, [.removeDirectory], context: context)
  }

  /// rename(2) itself (perl's, else `mv -T`): the kernel's own errno and permission checks.
  public func rename(from source: String, to destination: String) async throws {
    let context = "rename \(source) to \(destination)"
    if source == "/" || destination == "/" {
      throw RemoteError(errno: EBUSY, "\(context): the mount root cannot be renamed")
    }
    try await check(source, [.rename(to: sandboxPath(destination))], context: context)
  }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    try await run(path, ExecScript.steps(for: changes), context: "setattr \(path)")
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    RemoteEntryState(
      try await run(
        path, [.create(mode: mode, exclusive: exclusive), .stat], context: "create \(path)"))
  }

  /// `mkdir -m`: the exact mode and mkdir(2)'s errors in one job.
  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    if path == "/" { throw RemoteError(errno: EEXIST, "mkdir /: the mount root exists") }
    return RemoteEntryState(
      try await run(path, [.makeDirectory(mode: mode), .stat], context: "mkdir \(path)"))
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    let context = "mknod \(path)"
    let permissions = mode & 0o7777
    switch mode & 0o170000 {
    case 0o010000:
      return RemoteEntryState(
        try await run(path, [.makeFifo(mode: permissions), .stat], context: context))
    case 0o020000, 0o060000:
      // mknod(1) as the caller: EPERM only where the sandbox refuses (no CAP_MKNOD).
      let step = ExecScript.Step.makeDevice(
        kind: mode & 0o170000 == 0o020000 ? "c" : "b", major: Self.major(device),
        minor: Self.minor(device), mode: permissions)
      return RemoteEntryState(try await run(path, [step, .stat], context: context))
    case 0o140000:
      return RemoteEntryState(
        try await run(path, [.makeSocket(mode: permissions), .stat], context: context))
    case 0o100000, 0:
      return try await createFile(path, mode: mode, exclusive: true)
    default:
      throw RemoteError(errno: EINVAL, "\(context): unknown file type")
    }
  }

  /// glibc's `major`/`minor` of a 64-bit dev_t.
  static func major(_ device: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: ((device >> 8) & 0xFFF) | ((device >> 32) & ~0xFFF))
  }

  static func minor(_ device: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: (device & 0xFF) | ((device >> 12) & ~0xFF))
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    var attributes = try await run(
      path, [.symlink(target: target), .stat], context: "symlink \(path)")
    attributes.symlinkTarget = target
    return RemoteEntryState(attributes)
  }

  public func readLink(_ path: String) async throws -> String {
    let context = "readlink \(path)"
    let result = try await runner.run(sandboxPath(path), [.readLink])
    try result.check(context: context)
    guard let text = result.linkText else {
      throw RemoteError(errno: EIO, "\(context): no link text in the answer")
    }
    return text
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    RemoteEntryState(
      try await run(
        destination, [.link(from: sandboxPath(source)), .stat],
        context: "link \(destination) to \(source)"))
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    try await check(path, [.fsync(dataOnly: dataOnly)], context: "fsync \(path)")
  }

  /// A mount's remote folder must be an absolute path.
  public static func checkAbsolute(_ remoteRoot: String) throws {
    guard remoteRoot.hasPrefix("/") else {
      throw RemoteError(errno: EINVAL, "the remote root must be absolute")
    }
  }

  /// The mounted folder (`remoteRoot`, for the message) is a directory the commands can see.
  public func checkMountedFolder(_ remoteRoot: String) async throws {
    let root = try await attributes(of: "/")
    guard root.type == .directory else {
      throw RemoteError(errno: ENOTDIR, "\(remoteRoot) is not a directory")
    }
  }

  /// An upload as a vendor's whole-file write can make it atomic: `push` writes the content to
  /// `.NAME.sandbox-mount-XXXX` beside the target (the sandbox path it is given) and returns
  /// its size; one job then checks that size and renames it over the target with the target's
  /// owner and mode, and sets the folder's mtime back. Missing parents are ENOENT/ENOTDIR, as
  /// upload(2)'s contract asks, even where the vendor's write would make them. A failed push
  /// leaves the old content and no temporary file.
  public func upload(
    _ path: String, context: String, push: (_ temporarySandboxPath: String) async throws -> UInt64
  ) async throws -> RemoteEntryState {
    if path == "/" { throw RemoteError(errno: EISDIR, "\(context): the mount root is a directory") }
    let parent = RemotePath.parent(of: path)
    let folder = try await attributes(of: parent)
    guard folder.type == .directory else {
      throw RemoteError(errno: ENOTDIR, "\(context): \(parent) is not a directory")
    }
    let temporary = RemotePath.join(
      parent,
      ".\(RemotePath.name(of: path).prefix(200)).sandbox-mount-"
        + String(UInt64.random(in: 0..<(1 << 40)), radix: 36))
    do {
      let size = try await push(sandboxPath(temporary))
      let replace = ExecScript.Step.replace(
        from: sandboxPath(temporary), size: size, directoryTime: folder.modificationTime)
      return RemoteEntryState(try await run(path, [replace, .stat], context: context))
    } catch {
      try? await check(temporary, [.discard], context: context)
      throw error
    }
  }

  /// `stat -f` of the mount's root.
  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    let result = try await runner.run(sandboxPath("/"), [.statfs])
    try result.check(context: "statfs")
    guard let line = result.statfs, let statistics = ExecOutput.statistics(line) else {
      throw RemoteError(errno: EIO, "statfs: no usable answer: \(result.statfs ?? "")")
    }
    return statistics
  }

  // MARK: small writes in place

  /// `RemoteFilesystem.writeRanges` for a backend with whole-file uploads: small changes in
  /// place through one job (a pwrite or an append to a big file moves its bytes, not the file);
  /// a file written from scratch, or more than `limit` bytes, is EOPNOTSUPP: the caller
  /// uploads the whole file.
  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64, limit: Int = patchLimit
  ) async throws -> RemoteAttributes? {
    let context = "write \(path)"
    let total = ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) }
    guard truncateFirst != 0, total <= UInt64(limit) else {
      throw RemoteError(errno: EOPNOTSUPP, "\(context): a whole upload is cheaper")
    }
    let descriptor = open(localPath, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw LocalError(errno: errno, "open for \(context)", localPath) }
    defer { close(descriptor) }
    return try await patch(
      path, descriptor: descriptor, ranges: ranges, truncateFirst: truncateFirst, size: size,
      limit: limit)
  }

  /// Dirty ranges of at most this many bytes in all go through one process, as base64
  /// arguments (each under Linux's 128 KiB limit for one argument); more is EOPNOTSUPP, and
  /// the caller uploads the whole file.
  public static let patchLimit = 256 * 1024
  static let patchPiece = 48 * 1024

  /// Writes `ranges` of the local file (`descriptor`) into the existing file at `path`, in
  /// place, through one job: a truncate to `truncateFirst` first, and the size `size` at the
  /// end. A size other than `size` afterwards is EIO.
  public func patch(
    _ path: String, descriptor: Int32, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64, limit: Int = patchLimit
  ) async throws -> RemoteAttributes {
    let context = "write \(path)"
    let total = ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) }
    guard total <= UInt64(limit) else {
      throw RemoteError(errno: EOPNOTSUPP, "\(context): too many changed bytes for one process")
    }
    var steps: [ExecScript.Step] = truncateFirst.map { [.size($0)] } ?? []
    for piece in ranges.flatMap({ Self.split($0, into: UInt64(Self.patchPiece)) }) {
      let bytes = try Self.read(piece, from: descriptor, context: context)
      steps.append(.patch(offset: piece.lowerBound, bytes: bytes))
    }
    steps += [.size(size), .stat]
    let attributes = try await run(path, steps, context: context)
    if attributes.size != size {
      throw RemoteError(
        errno: EIO, "\(context): the sandbox holds \(attributes.size) bytes, not \(size)")
    }
    return attributes
  }

  private static func split(_ range: Range<UInt64>, into piece: UInt64) -> [Range<UInt64>] {
    stride(from: range.lowerBound, to: range.upperBound, by: Int(piece)).map {
      $0..<min($0 + piece, range.upperBound)
    }
  }

  private static func read(_ range: Range<UInt64>, from descriptor: Int32, context: String) throws
    -> [UInt8]
  {
    let count = Int(range.upperBound - range.lowerBound)
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let got = bytes.withUnsafeMutableBytes {
        pread(
          descriptor, $0.baseAddress! + done, count - done, off_t(range.lowerBound) + off_t(done))
      }
      if got < 0, errno == EINTR { continue }
      guard got > 0 else {
        throw LocalError(
          errno: got < 0 ? errno : EIO, "read for \(context)", "the staged copy (fd \(descriptor))",
          detail: got < 0 ? nil : "it is shorter than its changes")
      }
      done += got
    }
    return bytes
  }
}

/// A backend whose metadata goes through the exec layer: these forward the operations no
/// vendor API of its own covers (stat, list, mkdir, remove, rename, statfs, setattr, create,
/// mknod, symlink, readlink, link, fsync); a backend with a native call implements it itself.
public protocol ExecMetadataBackend: RemoteFilesystem {
  var exec: ExecFilesystem { get }
}

extension ExecMetadataBackend {
  public func attributes(of path: String) async throws -> RemoteAttributes {
    try await exec.attributes(of: path)
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    try await exec.listDirectory(path)
  }

  /// `mkdir -m`: the exact mode (vendors' own mkdir calls take none).
  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    _ = try await exec.createDirectory(path, mode: mode)
  }

  @discardableResult
  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    try await exec.removeFile(path)
    return nil
  }

  @discardableResult
  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    try await exec.removeDirectory(path)
    return nil
  }

  public func rename(from source: String, to destination: String) async throws {
    try await exec.rename(from: source, to: destination)
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    try await exec.filesystemStatistics()
  }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    try await exec.setAttributes(path, changes)
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    try await exec.createFile(path, mode: mode, exclusive: exclusive)
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    try await exec.createDirectory(path, mode: mode)
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    try await exec.makeNode(path, mode: mode, device: device)
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    try await exec.createSymlink(path, target: target)
  }

  public func readLink(_ path: String) async throws -> String {
    try await exec.readLink(path)
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    try await exec.link(from: source, to: destination)
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    try await exec.synchronize(path, dataOnly: dataOnly)
  }
}
