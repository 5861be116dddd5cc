import Backend
import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization

/// Blocks kept as files in a folder, least recently used removed first beyond a byte budget.
/// The folder outlives mounts: at start its files are indexed (oldest modification first; a hit
/// refreshes the mtime), so a remount finds what the last one cached.
///
/// All file IO runs on dispatch queues of its own, never on Swift's cooperative pool: reads on a
/// concurrent queue, writes and removals on a serial one. A write goes to a temporary file that is
/// renamed into place, so a reader sees a whole block or none; a damaged file fails its checksum
/// and is removed. One process uses a folder at a time (flock on `lock`).
///
/// Invariant: `index.bytes` is the sum of the sizes of the files in `index`, and after each write
/// it is at most `budget`.
final class DiskBlockStore: Sendable {
  let directory: String
  let budget: UInt64
  private let lockDescriptor: Int32
  private let index: Mutex<Index>
  private let readQueue = DispatchQueue(label: "block-cache-disk-read", attributes: .concurrent)
  private let writeQueue = DispatchQueue(label: "block-cache-disk-write")
  private let logger: Logger
  /// Blocks waiting to be written are skipped beyond this, so a slow disk never holds more
  /// memory (the block cache counts it in its budget).
  let pendingWriteLimit: Int

  private struct Index {
    var sizes: [String: UInt64] = [:]
    var recency = RecencyList<String>()
    var bytes: UInt64 = 0
    var pendingWriteBytes = 0
  }

  /// Opens (creating) `directory`, locks it and indexes the blocks already there.
  init(directory: String, budget: UInt64, pendingWriteLimit: Int, logger: Logger) throws {
    self.directory = directory
    self.budget = budget
    self.pendingWriteLimit = pendingWriteLimit
    self.logger = logger
    do {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true,
        attributes: [.posixPermissions: 0o700])
    } catch {
      throw LocalError(foundation: error, "mkdir", "the cache folder \(directory)")
    }
    let descriptor = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw LocalError(errno: errno, "open", "\(directory)/lock")
    }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      close(descriptor)
      throw LocalError(
        errno: EBUSY, "lock (another mount uses it)", "the cache folder \(directory)")
    }
    lockDescriptor = descriptor
    let found = Self.scan(directory)
    index = Mutex(found)
    let excess = trimToBudget()
    writeQueue.async { [directory] in excess.forEach { unlink(directory + "/" + $0) } }
    logger.debug("disk cache \(directory): \(blockCount) blocks, \(storedBytes) bytes")
  }

  deinit {
    close(lockDescriptor)
  }

  var storedBytes: UInt64 { index.withLock { $0.bytes } }
  var blockCount: Int { index.withLock { $0.sizes.count } }

  /// Whether a block file for `identity` is indexed (it may still turn out damaged).
  func contains(identity: String) -> Bool {
    let name = DiskBlockFormat.fileName(for: identity)
    return index.withLock { $0.sizes[name] != nil }
  }

  /// The block named `identity`, or nil if it is not here (or its file is damaged).
  func read(identity: String) async -> [UInt8]? {
    let name = DiskBlockFormat.fileName(for: identity)
    let known = index.withLock { index -> Bool in
      guard index.sizes[name] != nil else { return false }
      index.recency.touch(name)
      return true
    }
    guard known else { return nil }
    let path = directory + "/" + name
    let result: Result<[UInt8], BlockFileError> = await withCheckedContinuation { continuation in
      readQueue.async { continuation.resume(returning: Self.readFile(path, identity: identity)) }
    }
    switch result {
    case .success(let bytes):
      return bytes
    case .failure(.missing):
      forget(name)
      return nil
    case .failure(.damaged(let reason)):
      logger.warning("disk cache: dropping \(path): \(reason)")
      forget(name)
      writeQueue.async { unlink(path) }
      return nil
    }
  }

  /// Writes the block in the background; skipped when too much is already waiting.
  func store(_ bytes: ArraySlice<UInt8>, identity: String) {
    let accepted = index.withLock { index -> Bool in
      guard index.pendingWriteBytes + bytes.count <= pendingWriteLimit else { return false }
      index.pendingWriteBytes += bytes.count
      return true
    }
    guard accepted else {
      logger.trace("disk cache: write skipped, \(pendingWriteLimit) bytes already pending")
      return
    }
    writeQueue.async { [self] in
      defer { index.withLock { $0.pendingWriteBytes -= bytes.count } }
      let name = DiskBlockFormat.fileName(for: identity)
      let size: UInt64
      do {
        size = try Self.writeFile(
          directory: directory, name: name, identity: identity, bytes: bytes)
      } catch {
        logger.warning("disk cache: cannot write \(name): \(error)")
        return
      }
      index.withLock { index in
        index.bytes -= index.sizes[name] ?? 0
        index.sizes[name] = size
        index.bytes += size
        index.recency.touch(name)
      }
      for old in trimToBudget() { unlink(directory + "/" + old) }
    }
  }

  /// Waits until every write queued so far is done (tests, shutdown).
  func waitForWrites() async {
    await withCheckedContinuation { continuation in
      writeQueue.async { continuation.resume() }
    }
  }

  // MARK: - Index

  /// Takes the oldest entries out of the index until it fits the budget; returns their names
  /// for the caller to unlink.
  private func trimToBudget() -> [String] {
    index.withLock { index in
      var removed: [String] = []
      while index.bytes > budget, let oldest = index.recency.oldest {
        index.recency.remove(oldest)
        index.bytes -= index.sizes.removeValue(forKey: oldest) ?? 0
        removed.append(oldest)
      }
      return removed
    }
  }

  private func forget(_ name: String) {
    index.withLock { index in
      guard let size = index.sizes.removeValue(forKey: name) else { return }
      index.recency.remove(name)
      index.bytes -= size
    }
  }

  /// Indexes the block files, oldest first; removes leftovers of interrupted writes.
  private static func scan(_ directory: String) -> Index {
    var found: [(name: String, size: UInt64, modified: timespec)] = []
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in names {
      let path = directory + "/" + name
      if name.hasSuffix(".tmp") {
        unlink(path)
        continue
      }
      guard name.hasSuffix(".block") else { continue }
      var info = stat()
      guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
      found.append((name, UInt64(info.st_size), info.st_mtim))
    }
    found.sort {
      ($0.modified.tv_sec, $0.modified.tv_nsec) < ($1.modified.tv_sec, $1.modified.tv_nsec)
    }
    var result = Index()
    for file in found {
      result.sizes[file.name] = file.size
      result.recency.touch(file.name)
      result.bytes += file.size
    }
    return result
  }

  // MARK: - Files (dispatch queues only)

  enum BlockFileError: Error {
    case missing
    case damaged(String)
  }

  private static func readFile(_ path: String, identity: String) -> Result<[UInt8], BlockFileError>
  {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      return .failure(errno == ENOENT ? .missing : .damaged(String(cString: strerror(errno))))
    }
    defer { close(descriptor) }
    var headerBytes = [UInt8](repeating: 0, count: DiskBlockFormat.headerSize)
    guard headerBytes.withUnsafeMutableBytes({ readFully(descriptor, into: $0, at: 0) }),
      let header = DiskBlockFormat.parseHeader(headerBytes)
    else { return .failure(.damaged("bad header")) }
    let expectedIdentity = Array(identity.utf8)
    guard header.identityLength == expectedIdentity.count else {
      return .failure(.damaged("another block with the same file name"))
    }
    var storedIdentity = [UInt8](repeating: 0, count: header.identityLength)
    guard
      storedIdentity.withUnsafeMutableBytes({
        readFully(descriptor, into: $0, at: DiskBlockFormat.headerSize)
      }),
      storedIdentity == expectedIdentity
    else { return .failure(.damaged("another block with the same file name")) }
    let dataOffset = DiskBlockFormat.headerSize + header.identityLength
    var info = stat()
    guard fstat(descriptor, &info) == 0, Int(info.st_size) == dataOffset + header.dataLength else {
      return .failure(.damaged("its size does not match its header"))
    }
    var complete = false
    let data = [UInt8](unsafeUninitializedCapacity: header.dataLength) { buffer, initialized in
      complete = readFully(descriptor, into: UnsafeMutableRawBufferPointer(buffer), at: dataOffset)
      initialized = complete ? header.dataLength : 0
    }
    guard complete else { return .failure(.damaged("shorter than its header says")) }
    guard data.withUnsafeBytes({ BlockChecksum.of($0) }) == header.checksum else {
      return .failure(.damaged("checksum mismatch"))
    }
    // A hit counts as a use: remounts then evict in the order blocks were last used.
    _ = futimens(descriptor, nil)
    return .success(data)
  }

  private static func readFully(
    _ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int
  ) -> Bool {
    var done = 0
    while done < buffer.count {
      let got = pread(
        descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
      if got < 0 && errno == EINTR { continue }
      if got <= 0 { return false }
      done += got
    }
    return true
  }

  /// Writes header and data to a temporary file, then renames it to `name`; returns its size.
  private static func writeFile(
    directory: String, name: String, identity: String, bytes: ArraySlice<UInt8>
  )
    throws -> UInt64
  {
    let header = bytes.withUnsafeBytes { DiskBlockFormat.header(identity: identity, data: $0) }
    let temporary = "\(directory)/\(name).\(UInt32.random(in: 0...UInt32.max)).tmp"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw LocalError(errno: errno, "open", temporary) }
    var closed = false
    defer {
      if !closed { close(descriptor) }
    }
    do {
      try writeFully(descriptor, header, at: 0, file: temporary)
      try writeFully(descriptor, bytes, at: header.count, file: temporary)
      closed = true
      guard close(descriptor) == 0 else { throw LocalError(errno: errno, "close", temporary) }
      guard rename(temporary, directory + "/" + name) == 0 else {
        throw LocalError(errno: errno, "rename", temporary)
      }
    } catch {
      unlink(temporary)
      throw error
    }
    return UInt64(header.count + bytes.count)
  }

  private static func writeFully(
    _ descriptor: Int32, _ bytes: some ContiguousBytes, at offset: Int, file: String
  ) throws {
    try bytes.withUnsafeBytes { buffer in
      var done = 0
      while done < buffer.count {
        let put = pwrite(
          descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
        if put < 0 && errno == EINTR { continue }
        guard put > 0 else { throw LocalError(errno: put < 0 ? errno : ENOSPC, "write", file) }
        done += put
      }
    }
  }
}
