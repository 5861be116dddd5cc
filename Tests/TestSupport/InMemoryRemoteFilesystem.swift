import Backend
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A reference `RemoteFilesystem` in memory, with the errnos the protocol's doc comments give:
/// the model a real backend is compared with, and a backend for core tests without FUSE.
///
/// It acts as root (chown is allowed, devices can be made), renames atomically with both
/// flags, has hard links (one node under several names), rich attributes and batches (applied
/// in order, each answered, not atomic as a whole). Every call is counted, so tests can check
/// that a cache answered instead.
public final class InMemoryRemoteFilesystem: RemoteFilesystem {
  struct Node {
    var type: RemoteFileType
    var permissions: UInt32
    var content: [UInt8] = []
    var target: String?
    var device: UInt64?
    var uid: UInt32
    var gid: UInt32
    var modificationTime: RemoteTime
    var accessTime: RemoteTime
    var changeTime: RemoteTime
    var linkCount: UInt32 = 1
    /// Name → node, for a directory.
    var children: [String: UInt64] = [:]
  }

  struct State {
    var nodes: [UInt64: Node] = [:]
    var nextInode: UInt64 = 2
    var calls: [String: Int] = [:]
    /// Answers of `read` and `download` cut short (a broken transfer), while above zero.
    var truncatedAnswers = 0
    /// Operations that fail with EIO (the sandbox unreachable).
    var failing: Set<String> = []
  }

  static let rootInode: UInt64 = 1
  let state: Mutex<State>
  let owner: (uid: UInt32, gid: UInt32)
  let declaredCapabilities: RemoteCapabilities

  /// Everything it does, natively.
  public static let allCapabilities = RemoteCapabilities(
    rangedReads: true, offsetWrites: true, atomicRenameFlags: true, hardLinks: true,
    batchChanges: true, inodeNumbers: true, richAttributes: true, owners: .ids,
    uploadKeepsOwnerAndMode: true, description: "in-memory reference")

  /// What stock envd declares: the core then derives inode numbers, link counts and times, and
  /// restores special bits after uploads, as over envd.
  public static let stockEnvdCapabilities = RemoteCapabilities(
    rangedReads: true, offsetWrites: true, hardLinks: true, batchChanges: true, owners: .ids,
    description: "in-memory as stock envd")

  /// `capabilities`: what it declares, to be presented as another backend; it still does
  /// everything, so the core must not rely on more than is declared.
  public init(
    uid: UInt32 = getuid(), gid: UInt32 = getgid(),
    capabilities: RemoteCapabilities = allCapabilities
  ) {
    owner = (uid, gid)
    declaredCapabilities = capabilities
    let now = Self.now()
    var initial = State()
    initial.nodes[Self.rootInode] = Node(
      type: .directory, permissions: 0o755, uid: uid, gid: gid, modificationTime: now,
      accessTime: now, changeTime: now, linkCount: 2)
    state = Mutex(initial)
  }

  // MARK: - For tests

  /// How many times the operation named `name` (e.g. "attributes", "listDirectory") was called.
  public func calls(_ name: String) -> Int { state.withLock { $0.calls[name] ?? 0 } }

  /// Calls of any operation since the last `resetCalls`.
  public var totalCalls: Int { state.withLock { $0.calls.values.reduce(0, +) } }

  public func resetCalls() { state.withLock { $0.calls = [:] } }

  /// The next `count` answers of `read` or `download` lose their second half.
  public func truncateAnswers(_ count: Int) { state.withLock { $0.truncatedAnswers = count } }

  /// Makes the operations named `names` (e.g. "upload", "writeRanges") fail with EIO; [] ends it.
  public func fail(_ names: Set<String>) { state.withLock { $0.failing = names } }

  /// The content of the regular file at `path`, without counting a call.
  public func contents(_ path: String) throws -> [UInt8] {
    try state.withLock { state in
      let node = try Self.lookUp(path, in: state).node
      guard node.type == .regular else { throw RemoteError(errno: EISDIR, path) }
      return node.content
    }
  }

  /// Makes or replaces a regular file (and missing parent folders), without counting a call:
  /// what others do in the sandbox behind the mount's back.
  public func put(_ path: String, _ content: [UInt8], mode: UInt32 = 0o644) {
    state.withLock { state in
      var directory = ""
      for component in path.split(separator: "/").dropLast() {
        directory += "/" + component
        if (try? Self.lookUp(directory, in: state)) == nil {
          _ = try? make(directory, Node(directory: 0o755, owner: owner), in: &state)
        }
      }
      if let existing = try? Self.lookUp(path, in: state), existing.node.type == .regular {
        state.nodes[existing.inode]!.content = content
        state.nodes[existing.inode]!.modificationTime = Self.now()
      } else {
        _ = try? make(path, Node(file: mode, owner: owner, content: content), in: &state)
      }
    }
  }

  // MARK: - RemoteFilesystem

  public func attributes(of path: String) async throws -> RemoteAttributes {
    try access("attributes") { state in try Self.attributes(of: path, in: state) }
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    try access("listDirectory") { state in
      let node = try Self.lookUp(path, in: state).node
      guard node.type == .directory else { throw RemoteError(errno: ENOTDIR, path) }
      return node.children.sorted { $0.key < $1.key }.map { name, inode in
        RemoteEntry(name: name, attributes: Self.attributes(of: inode, in: state))
      }
    }
  }

  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    try access("read") { state in
      // Truncation: fewer bytes than the size stat'ed before promises. One retry, then EIO.
      let promised =
        expectedSize == 0 || offset >= expectedSize ? 0 : min(length, Int(expectedSize - offset))
      for _ in 0..<2 {
        let bytes = try Self.readOnce(path, offset: offset, length: length, in: &state)
        if bytes.count >= promised { return bytes }
      }
      throw RemoteError(errno: EIO, "\(path) is shorter than \(expectedSize) bytes")
    }
  }

  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    let bytes = try access("download") { state in
      for _ in 0..<2 {
        let bytes = try Self.readOnce(path, offset: 0, length: Int.max, in: &state)
        if UInt64(bytes.count) >= expectedSize { return bytes }
      }
      throw RemoteError(errno: EIO, "\(path) is shorter than \(expectedSize) bytes")
    }
    guard FileManager.default.createFile(atPath: localPath, contents: Data(bytes)) else {
      throw LocalError(errno: EIO, "create", localPath)
    }
    return UInt64(bytes.count)
  }

  /// Atomic: a new node replaces the old one, keeping its owner and mode, unless the file has
  /// other hard links, which keep sharing it (rewritten in place), as the agent does.
  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    let content = try localPath.map { try Self.localContents($0) } ?? []
    return try access("upload") { state in
      let now = Self.now()
      if let existing = try? Self.lookUp(path, in: state) {
        guard existing.node.type != .directory else { throw RemoteError(errno: EISDIR, path) }
        // Another type (a symlink, a FIFO) is replaced by a plain file.
        var node =
          existing.node.type == .regular
          ? existing.node : Node(file: 0o644, owner: owner, content: content)
        node.content = content
        node.modificationTime = now
        node.changeTime = now
        if existing.node.type == .regular && node.linkCount > 1 {
          state.nodes[existing.inode] = node
        } else {
          // A new node renamed over the old name. The directory keeps its times, as when a
          // file is rewritten on Linux (the agent restores them too).
          let inode = state.nextInode
          state.nextInode += 1
          node.linkCount = 1
          state.nodes[inode] = node
          let parent = try Self.directory(RemotePath.parent(of: path), in: state)
          let before = state.nodes[parent]!
          try Self.unlinkName(path, inode: existing.inode, in: &state)
          state.nodes[parent]!.children[RemotePath.name(of: path)] = inode
          state.nodes[parent]!.modificationTime = before.modificationTime
          state.nodes[parent]!.changeTime = before.changeTime
        }
      } else {
        _ = try make(path, Node(file: 0o644, owner: owner, content: content), in: &state)
      }
      return try Self.entryState(path, in: state)
    }
  }

  public func writeRanges(
    _ path: String, from localPath: String, ranges: [Range<UInt64>], truncateFirst: UInt64?,
    size: UInt64
  ) async throws -> RemoteAttributes? {
    let local = try Self.localContents(localPath)
    return try access("writeRanges") { state in
      let (inode, node) = try Self.lookUp(path, in: state)
      guard node.type == .regular else {
        throw RemoteError(errno: node.type == .directory ? EISDIR : EINVAL, path)
      }
      var content = node.content
      if let truncateFirst { Self.resize(&content, to: truncateFirst) }
      for range in ranges {
        let end = Int(range.upperBound)
        guard end <= local.count else {
          throw LocalError(errno: EIO, "read", localPath, detail: "shorter than the ranges to send")
        }
        if content.count < end { Self.resize(&content, to: UInt64(end)) }
        content.replaceSubrange(
          Int(range.lowerBound)..<end, with: local[Int(range.lowerBound)..<end])
      }
      Self.resize(&content, to: size)
      let now = Self.now()
      state.nodes[inode]!.content = content
      state.nodes[inode]!.modificationTime = now
      state.nodes[inode]!.changeTime = now
      return Self.attributes(of: inode, in: state)
    }
  }

  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    _ = try await createDirectory(path, mode: mode)
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    try access("createDirectory") { state in
      _ = try make(path, Node(directory: mode & 0o7777, owner: owner), in: &state)
      return try Self.entryState(path, in: state)
    }
  }

  @discardableResult
  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    try access("removeFile") { state in
      let (inode, node) = try Self.lookUp(path, in: state)
      guard node.type != .directory else { throw RemoteError(errno: EISDIR, path) }
      try Self.unlinkName(path, inode: inode, in: &state)
      return try Self.attributes(of: RemotePath.parent(of: path), in: state)
    }
  }

  @discardableResult
  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    try access("removeDirectory") { state in
      let (inode, node) = try Self.lookUp(path, in: state)
      guard node.type == .directory else { throw RemoteError(errno: ENOTDIR, path) }
      guard inode != Self.rootInode else { throw RemoteError(errno: EBUSY, path) }
      guard node.children.isEmpty else { throw RemoteError(errno: ENOTEMPTY, path) }
      try Self.unlinkName(path, inode: inode, in: &state)
      return try Self.attributes(of: RemotePath.parent(of: path), in: state)
    }
  }

  public func rename(from source: String, to destination: String) async throws {
    try await rename(from: source, to: destination, flags: [])
  }

  @discardableResult
  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    try access("rename") { state in
      guard flags.isSubset(of: [.noReplace, .exchange]), flags != [.noReplace, .exchange] else {
        throw RemoteError(errno: EINVAL, "rename flags \(flags.rawValue)")
      }
      let moving = try Self.lookUp(source, in: state)
      let sourceParent = try Self.lookUp(RemotePath.parent(of: source), in: state).inode
      let destinationParent = try Self.directory(RemotePath.parent(of: destination), in: state)
      let replaced = try? Self.lookUp(destination, in: state)
      func change() -> RemoteNameChange {
        RemoteNameChange(
          attributes: Self.attributes(of: moving.inode, in: state),
          parent: Self.attributes(of: sourceParent, in: state),
          destinationParent: sourceParent == destinationParent
            ? nil : Self.attributes(of: destinationParent, in: state))
      }
      if flags.contains(.exchange) {
        guard let replaced else { throw RemoteError(errno: ENOENT, destination) }
        // Neither may be inside the other.
        guard !Self.isInside(destination, source), !Self.isInside(source, destination) else {
          throw RemoteError(errno: EINVAL, "\(source) and \(destination) nest")
        }
        state.nodes[sourceParent]!.children[RemotePath.name(of: source)] = replaced.inode
        state.nodes[destinationParent]!.children[RemotePath.name(of: destination)] = moving.inode
        let directories = [moving.node, replaced.node].map { $0.type == .directory }
        if sourceParent != destinationParent, directories[0] != directories[1] {
          // The directory changes parent: the parents' link counts follow.
          let step: Int32 = directories[0] ? 1 : -1
          Self.addLinks(step, to: destinationParent, in: &state)
          Self.addLinks(-step, to: sourceParent, in: &state)
        }
        let now = Self.now()
        for inode in [moving.inode, replaced.inode] { state.nodes[inode]!.changeTime = now }
        Self.touch(sourceParent, at: now, in: &state)
        Self.touch(destinationParent, at: now, in: &state)
        return change()
      }
      // In Linux's order: the flag, then nesting, then the types.
      if replaced != nil && flags.contains(.noReplace) {
        throw RemoteError(errno: EEXIST, destination)
      }
      if Self.isInside(destination, source) {
        throw RemoteError(errno: EINVAL, "\(destination) is inside \(source)")
      }
      if replaced != nil && Self.isInside(source, destination) {
        throw RemoteError(errno: ENOTEMPTY, "\(destination) holds \(source)")
      }
      if let replaced {
        // Two names of one node: nothing happens, as rename(2).
        if replaced.inode == moving.inode { return RemoteNameChange() }
        switch (moving.node.type == .directory, replaced.node.type == .directory) {
        case (true, false): throw RemoteError(errno: ENOTDIR, destination)
        case (false, true): throw RemoteError(errno: EISDIR, destination)
        case (true, true) where !replaced.node.children.isEmpty:
          throw RemoteError(errno: ENOTEMPTY, destination)
        default: break
        }
      }
      if let replaced { try Self.unlinkName(destination, inode: replaced.inode, in: &state) }
      let now = Self.now()
      state.nodes[sourceParent]!.children[RemotePath.name(of: source)] = nil
      state.nodes[destinationParent]!.children[RemotePath.name(of: destination)] = moving.inode
      if moving.node.type == .directory && sourceParent != destinationParent {
        Self.addLinks(-1, to: sourceParent, in: &state)
        Self.addLinks(1, to: destinationParent, in: &state)
      }
      state.nodes[moving.inode]!.changeTime = now
      Self.touch(sourceParent, at: now, in: &state)
      Self.touch(destinationParent, at: now, in: &state)
      return change()
    }
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    try access("filesystemStatistics") { state in
      let used = state.nodes.values.reduce(UInt64(0)) { $0 + UInt64($1.content.count) }
      var statistics = RemoteFilesystemStatistics(totalBytes: 1 << 30, usedBytes: used)
      statistics.blockSize = 4096
      statistics.totalBlocks = (1 << 30) / 4096
      statistics.totalFiles = 1 << 20
      statistics.freeFiles = (1 << 20) - UInt64(state.nodes.count)
      statistics.maximumNameLength = 255
      return statistics
    }
  }

  public func capabilities() async -> RemoteCapabilities { declaredCapabilities }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    try access("setAttributes") { state in
      let (inode, found) = try Self.lookUp(path, in: state)
      var node = found
      let now = Self.now()
      if let size = changes.size {
        guard node.type == .regular else {
          throw RemoteError(errno: node.type == .directory ? EISDIR : EINVAL, path)
        }
        Self.resize(&node.content, to: size)
        node.modificationTime = now
      }
      if changes.uid != nil || changes.gid != nil {
        node.uid = changes.uid ?? node.uid
        node.gid = changes.gid ?? node.gid
        // chown(2) clears setuid, and setgid with group execute, of a non-directory.
        if node.type != .directory {
          node.permissions &= ~UInt32(S_ISUID)
          if node.permissions & 0o010 != 0 { node.permissions &= ~UInt32(S_ISGID) }
        }
      }
      if let mode = changes.mode {
        guard node.type != .symlink else { throw RemoteError(errno: EOPNOTSUPP, path) }
        node.permissions = mode & 0o7777
      }
      switch changes.accessTime {
      case .now: node.accessTime = now
      case .set(let time): node.accessTime = time
      case nil: break
      }
      switch changes.modificationTime {
      case .now: node.modificationTime = now
      case .set(let time): node.modificationTime = time
      case nil: break
      }
      if !changes.isEmpty { node.changeTime = now }
      state.nodes[inode] = node
      return Self.attributes(of: inode, in: state)
    }
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    try access("createFile") { state in
      if let existing = try? Self.lookUp(path, in: state) {
        if exclusive { throw RemoteError(errno: EEXIST, path) }
        guard existing.node.type != .directory else { throw RemoteError(errno: EISDIR, path) }
      } else {
        _ = try make(path, Node(file: mode & 0o7777, owner: owner), in: &state)
      }
      return try Self.entryState(path, in: state)
    }
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    try access("makeNode") { state in
      let type: RemoteFileType
      switch mode & UInt32(S_IFMT) {
      case UInt32(S_IFREG), 0: type = .regular
      case UInt32(S_IFIFO): type = .fifo
      case UInt32(S_IFSOCK): type = .socket
      case UInt32(S_IFCHR): type = .characterDevice
      case UInt32(S_IFBLK): type = .blockDevice
      default: throw RemoteError(errno: EINVAL, "mknod type \(mode & UInt32(S_IFMT))")
      }
      var node = Node(file: mode & 0o7777, owner: owner)
      node.type = type
      if type == .characterDevice || type == .blockDevice { node.device = device }
      _ = try make(path, node, in: &state)
      return try Self.entryState(path, in: state)
    }
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    try access("createSymlink") { state in
      var node = Node(file: 0o777, owner: owner)
      node.type = .symlink
      node.target = target
      _ = try make(path, node, in: &state)
      return try Self.entryState(path, in: state)
    }
  }

  public func readLink(_ path: String) async throws -> String {
    try access("readLink") { state in
      let node = try Self.lookUp(path, in: state).node
      guard node.type == .symlink, let target = node.target else {
        throw RemoteError(errno: EINVAL, "\(path) is no symlink")
      }
      return target
    }
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    try access("link") { state in
      let (inode, node) = try Self.lookUp(source, in: state)
      guard node.type != .directory else { throw RemoteError(errno: EPERM, source) }
      let parent = try Self.directory(RemotePath.parent(of: destination), in: state)
      let name = RemotePath.name(of: destination)
      guard state.nodes[parent]!.children[name] == nil else {
        throw RemoteError(errno: EEXIST, destination)
      }
      let now = Self.now()
      state.nodes[parent]!.children[name] = inode
      state.nodes[inode]!.linkCount += 1
      state.nodes[inode]!.changeTime = now
      Self.touch(parent, at: now, in: &state)
      return try Self.entryState(destination, in: state)
    }
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    try access("synchronize") { state in _ = try Self.lookUp(path, in: state) }
  }

  /// Each change through the operations above, in order: a batch counts one "applyBatch" call
  /// plus its changes' own.
  public func applyBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    _ = try access("applyBatch") { _ in }
    var results: [Result<RemoteAttributes?, RemoteError>] = []
    for change in changes {
      do {
        results.append(.success(try await apply(change)))
      } catch let error as RemoteError {
        results.append(.failure(error))
      }
    }
    return results
  }

  private func apply(_ change: RemoteBatchChange) async throws -> RemoteAttributes? {
    switch change {
    case .makeDirectory(let path, let mode):
      return try await createDirectory(path, mode: mode).attributes
    case .put(let path, let content, let mode, var changes, let expected):
      if let expected {
        let current = try? await attributes(of: path)
        guard current?.version == expected else {
          throw RemoteError(errno: ESTALE, "\(path) changed since \(expected)")
        }
      }
      let local = NSTemporaryDirectory() + "/in-memory-put-\(UUID().uuidString)"
      guard FileManager.default.createFile(atPath: local, contents: Data(content)) else {
        throw RemoteError(errno: EIO, "cannot write \(local)")
      }
      defer { unlink(local) }
      try await upload(path, from: local)
      changes.mode = mode
      return try await setAttributes(path, changes)
    case .setAttributes(let path, let changes):
      return try await setAttributes(path, changes)
    case .removeFile(let path):
      try await removeFile(path)
      return nil
    case .removeDirectory(let path):
      try await removeDirectory(path)
      return nil
    case .symlink(let path, let target):
      return try await createSymlink(path, target: target).attributes
    }
  }

  // MARK: - The tree

  /// Counts the call, then runs `body` under the lock.
  private func access<T: Sendable>(_ name: String, _ body: (inout State) throws -> T) throws -> T {
    try state.withLock { state in
      state.calls[name, default: 0] += 1
      if state.failing.contains(name) { throw RemoteError(errno: EIO, "\(name) failed (test)") }
      return try body(&state)
    }
  }

  /// The node at `path`. Every component but the last must be a directory (ENOTDIR): the
  /// kernel resolved symlinks before the path reached a backend.
  static func lookUp(_ path: String, in state: State) throws -> (inode: UInt64, node: Node) {
    guard path.hasPrefix("/") else { throw RemoteError(errno: EINVAL, "relative path \(path)") }
    var inode = rootInode
    for component in path.split(separator: "/") {
      let node = state.nodes[inode]!
      guard node.type == .directory else { throw RemoteError(errno: ENOTDIR, path) }
      guard let child = node.children[String(component)] else {
        throw RemoteError(errno: ENOENT, "\(path) does not exist")
      }
      inode = child
    }
    return (inode, state.nodes[inode]!)
  }

  /// The directory at `path`: ENOENT if missing, ENOTDIR if something else.
  static func directory(_ path: String, in state: State) throws -> UInt64 {
    let (inode, node) = try lookUp(path, in: state)
    guard node.type == .directory else { throw RemoteError(errno: ENOTDIR, path) }
    return inode
  }

  /// Adds `node` at `path`: EEXIST if a name is there, ENOENT/ENOTDIR for the parent.
  private func make(_ path: String, _ node: Node, in state: inout State) throws -> UInt64 {
    guard path != "/" else { throw RemoteError(errno: EEXIST, path) }
    let parent = try Self.directory(RemotePath.parent(of: path), in: state)
    let name = RemotePath.name(of: path)
    guard state.nodes[parent]!.children[name] == nil else {
      throw RemoteError(errno: EEXIST, "\(path) exists")
    }
    guard name.utf8.count <= 255 else { throw RemoteError(errno: ENAMETOOLONG, path) }
    var node = node
    if state.nodes[parent]!.permissions & UInt32(S_ISGID) != 0 {
      // A setgid directory hands its group down, and its setgid to new directories.
      node.gid = state.nodes[parent]!.gid
      if node.type == .directory { node.permissions |= UInt32(S_ISGID) }
    }
    let inode = state.nextInode
    state.nextInode += 1
    state.nodes[inode] = node
    state.nodes[parent]!.children[name] = inode
    if node.type == .directory { Self.addLinks(1, to: parent, in: &state) }
    Self.touch(parent, at: node.changeTime, in: &state)
    return inode
  }

  /// Drops the name `path` of `inode`; the node goes with its last name.
  private static func unlinkName(_ path: String, inode: UInt64, in state: inout State) throws {
    let parent = try directory(RemotePath.parent(of: path), in: state)
    let now = now()
    state.nodes[parent]!.children[RemotePath.name(of: path)] = nil
    touch(parent, at: now, in: &state)
    if state.nodes[inode]!.type == .directory {
      addLinks(-1, to: parent, in: &state)
      state.nodes[inode] = nil
      return
    }
    state.nodes[inode]!.linkCount -= 1
    state.nodes[inode]!.changeTime = now
    if state.nodes[inode]!.linkCount == 0 { state.nodes[inode] = nil }
  }

  private static func readOnce(
    _ path: String, offset: UInt64, length: Int, in state: inout State
  ) throws -> [UInt8] {
    let node = try lookUp(path, in: state).node
    guard node.type != .directory else { throw RemoteError(errno: EISDIR, path) }
    guard offset < node.content.count else { return [] }
    let start = Int(offset)
    let end = length >= node.content.count - start ? node.content.count : start + length
    var bytes = Array(node.content[start..<end])
    if state.truncatedAnswers > 0, !bytes.isEmpty {
      state.truncatedAnswers -= 1
      bytes.removeLast(bytes.count / 2 + 1)
    }
    return bytes
  }

  private static func attributes(of path: String, in state: State) throws -> RemoteAttributes {
    attributes(of: try lookUp(path, in: state).inode, in: state)
  }

  private static func attributes(of inode: UInt64, in state: State) -> RemoteAttributes {
    let node = state.nodes[inode]!
    let size: UInt64 =
      switch node.type {
      case .regular: UInt64(node.content.count)
      case .symlink: UInt64(node.target?.utf8.count ?? 0)
      case .directory: 4096
      default: 0
      }
    return RemoteAttributes(
      type: node.type, size: size, permissions: node.permissions,
      modificationTime: node.modificationTime, accessTime: node.accessTime,
      changeTime: node.changeTime, symlinkTarget: node.target, inode: inode,
      linkCount: node.linkCount, uid: node.uid, gid: node.gid, blocks: (size + 511) / 512,
      deviceNumber: node.device)
  }

  private static func entryState(_ path: String, in state: State) throws -> RemoteEntryState {
    RemoteEntryState(
      try attributes(of: path, in: state),
      parent: try attributes(of: RemotePath.parent(of: path), in: state))
  }

  /// An entry came or went in `directory`.
  private static func touch(_ directory: UInt64, at time: RemoteTime, in state: inout State) {
    state.nodes[directory]!.modificationTime = time
    state.nodes[directory]!.changeTime = time
  }

  private static func addLinks(_ count: Int32, to directory: UInt64, in state: inout State) {
    state.nodes[directory]!.linkCount = UInt32(Int32(state.nodes[directory]!.linkCount) + count)
  }

  /// Whether `path` is strictly below `directory`.
  private static func isInside(_ path: String, _ directory: String) -> Bool {
    path.hasPrefix(directory == "/" ? "/" : directory + "/") && path != directory
  }

  private static func resize(_ content: inout [UInt8], to size: UInt64) {
    if content.count > Int(size) {
      content.removeLast(content.count - Int(size))
    } else {
      content += [UInt8](repeating: 0, count: Int(size) - content.count)
    }
  }

  private static func localContents(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw LocalError(errno: EIO, "read", path)
    }
    return [UInt8](data)
  }

  static func now() -> RemoteTime {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return RemoteTime(seconds: Int64(time.tv_sec), nanoseconds: Int32(time.tv_nsec))
  }
}

extension InMemoryRemoteFilesystem.Node {
  init(file mode: UInt32, owner: (uid: UInt32, gid: UInt32), content: [UInt8] = []) {
    let now = InMemoryRemoteFilesystem.now()
    self.init(
      type: .regular, permissions: mode, content: content, uid: owner.uid, gid: owner.gid,
      modificationTime: now, accessTime: now, changeTime: now)
  }

  init(directory mode: UInt32, owner: (uid: UInt32, gid: UInt32)) {
    self.init(file: mode, owner: owner)
    type = .directory
    linkCount = 2
  }
}
