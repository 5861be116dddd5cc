import Foundation
import Glibc

/// `Batch`: an ordered list of changes in one request, each answered on its own (one failing
/// does not stop the next). A mount's write-back journal drains through it: a 10,000-file
/// rsync becomes a few dozen requests instead of 50,000.
///
/// A `put` writes a whole small file atomically: a temporary file next to the target, with its
/// content, owner, mode and times, renamed over the target (a target with other hard links is
/// rewritten in place). The batch ends with one `syncfs` when it wrote anything, not an fsync
/// per file.
extension ExtensionService {
  func batch(_ request: ExtensionBatchRequest, user: AgentUser) -> ExtensionBatchResponse {
    var results: [ExtensionBatchResult] = []
    results.reserveCapacity(request.changes.count)
    var wrote = false
    for change in request.changes {
      // A change's own caller wins over the batch's.
      let caller = change.caller ?? request.caller
      do throws(ErrnoError) {
        let answer: ExtensionAttr?
        if change.operation == .put {
          answer = try put(change, user: user, caller: caller)
          wrote = true
        } else {
          answer = try CallerCredentials.perform(as: caller) { () throws(ErrnoError) in
            try apply(change, user: user, caller: caller)
          }
        }
        results.append(ExtensionBatchResult(attr: answer))
      } catch {
        results.append(ExtensionBatchResult(error: error.description))
      }
    }
    if wrote, let root = try? rootDirectory() { _ = LinuxExtras.syncfs(root.raw) }
    return ExtensionBatchResponse(results: results)
  }

  private func apply(_ change: ExtensionBatchChange, user: AgentUser, caller: ExtensionCaller?)
    throws(ErrnoError) -> ExtensionAttr?
  {
    var create = change.create
    create.caller = caller
    switch change.operation {
    case .mkdir: return try mkdir(create, user: user).attr
    case .create: return try self.create(create, user: user).attr
    case .symlink: return try symlink(create, user: user).attr
    case .unlink: return try unlink(ExtensionPathRequest(path: change.create.path)).attr
    case .rmdir: return try rmdir(ExtensionPathRequest(path: change.create.path)).attr
    case .rename: return try rename(change.twoPaths).attr
    case .link: return try link(change.twoPaths).attr
    case .setattr: return try setattr(change.attributes).attr
    case .put: return nil  // `batch` calls `put` itself.
    }
  }

  /// With a caller: a new file (or one that replaces something other than a regular file) is
  /// made wholly as the caller, so the kernel checks the folder and picks the owner. An
  /// existing regular file must be writable by the caller; its replacement keeps its owner and
  /// mode, so the temporary file and the rename are the agent's, the write and any metadata
  /// change the caller's (a write by anyone but root clears setuid, as on Linux).
  private func put(_ change: ExtensionBatchChange, user: AgentUser, caller: ExtensionCaller?)
    throws(ErrnoError) -> ExtensionAttr
  {
    let caller = CallerCredentials.honoured ? caller : nil
    let (entry, existing) = try CallerCredentials.perform(as: caller) {
      () throws(ErrnoError) -> (ResolvedEntry, Glibc.stat?) in
      let entry = try resolve(change.create.path)
      if entry.isRoot { throw ErrnoError(EISDIR, "/") }
      do throws(ErrnoError) {
        return (entry, try entry.lstat())
      } catch  where error.code == ENOENT {
        return (entry, nil)
      }
    }
    guard let caller, let existing, existing.isRegular else {
      return try CallerCredentials.perform(as: caller) { () throws(ErrnoError) in
        try put(change, entry: entry, existing: existing, user: user, caller: caller, writer: nil)
      }
    }
    try CallerCredentials.perform(as: caller) { () throws(ErrnoError) in
      let handle = try entry.openPath()
      _ = try reopen(handle, flags: O_WRONLY | O_NONBLOCK, detail: entry.path.description)
    }
    return try put(
      change, entry: entry, existing: existing, user: user, caller: caller, writer: caller)
  }

  /// `writer`: who writes the content and changes metadata, when not who runs this.
  private func put(
    _ change: ExtensionBatchChange, entry: ResolvedEntry, existing: Glibc.stat?, user: AgentUser,
    caller: ExtensionCaller?, writer: ExtensionCaller?
  ) throws(ErrnoError) -> ExtensionAttr {
    if existing?.isDirectory == true { throw ErrnoError(EISDIR, entry.path.description) }
    if let expected = change.expected, let existing,
      existing.st_size != expected.size || existing.st_mtim.tv_sec != expected.seconds
        || existing.st_mtim.tv_nsec != Int(expected.nanoseconds)
    {
      throw ErrnoError(ESTALE, "\(entry.path) changed since the client read it")
    }
    let existingMode = existing.map { UInt32($0.st_mode & 0o7777) }
    let mode = mode_t(change.create.mode ?? existingMode ?? 0o644)
    let file: FileDescriptor
    let temporary: TemporaryFile?
    // Rewriting a file leaves its directory's mtime alone on Linux; a replace by rename would
    // move it, so it is put back unless something else changed the directory meanwhile.
    var directoryTimes: (original: Glibc.timespec, withTemporary: Glibc.timespec)?
    if let existing, existing.isRegular, existing.st_nlink > 1 {
      // Other names share this inode: rewrite it in place, so they keep seeing it.
      file = try CallerCredentials.perform(as: writer) { () throws(ErrnoError) in
        try reopen(try entry.openPath(), flags: O_WRONLY | O_TRUNC, detail: entry.path.description)
      }
      temporary = nil
    } else {
      let owner = existing.map { ($0.st_uid, $0.st_gid) }
      let original = existing == nil ? nil : Self.modificationTime(of: entry.parent)
      let made = try TemporaryFile(next: entry, owner: owner, mode: mode & 0o777)
      file = made.descriptor
      temporary = made
      if let original, let withTemporary = Self.modificationTime(of: entry.parent) {
        directoryTimes = (original, withTemporary)
      }
    }
    do throws(ErrnoError) {
      try CallerCredentials.perform(as: writer) { () throws(ErrnoError) in
        let (_, failure) = change.content.withUnsafeBytes { file.writeAll($0, at: 0) }
        if failure != 0 { throw ErrnoError(failure, entry.path.description) }
        if existing == nil || change.create.uid != nil || change.create.gid != nil {
          try applyOwner(
            file, in: entry, uid: change.create.uid, gid: change.create.gid, user: user,
            caller: caller)
        }
        // After the owner: a chown clears setuid and setgid. A caller's write that keeps the
        // mode leaves what the kernel cleared.
        if caller == nil || existingMode != UInt32(mode & 0o7777) {
          try checked(fchmod(file.raw, mode & 0o7777), entry.path.description)
        }
        let times = change.attributes
        if times.atime != .omit || times.mtime != .omit {
          var values = [Self.timespec(times.atime), Self.timespec(times.mtime)]
          try checked(futimens(file.raw, &values), entry.path.description)
        }
      }
      if let temporary {
        // Checked before the rename, which moves the mtime itself.
        let unchanged =
          directoryTimes.flatMap { times in
            Self.modificationTime(of: entry.parent).map {
              $0.tv_sec == times.withTemporary.tv_sec && $0.tv_nsec == times.withTemporary.tv_nsec
            }
          } ?? false
        try temporary.place(
          in: entry.parent, as: entry.name, path: entry.path.description,
          targetExists: existing != nil)
        if unchanged, let directoryTimes {
          var times = [
            Glibc.timespec(tv_sec: 0, tv_nsec: LinuxExtras.utimeOmit), directoryTimes.original,
          ]
          _ = utimensat(AT_FDCWD, procPath(entry.parent), &times, 0)
        }
      }
    } catch {
      temporary?.discard(in: entry.parent)
      throw error
    }
    var info = Glibc.stat()
    try checked(fstat(file.raw, &info), entry.path.description)
    return ExtensionAttr(info: info)
  }
}

extension ExtensionService {
  fileprivate static func modificationTime(of directory: FileDescriptor) -> Glibc.timespec? {
    var info = Glibc.stat()
    return fstat(directory.raw, &info) == 0 ? info.st_mtim : nil
  }
}

/// `Batch` request: `{"changes":[{"op":"put","path":…,"content":base64,…},…]}`.
struct ExtensionBatchRequest: Decodable, Sendable, CallerCarrying {
  var changes: [ExtensionBatchChange]
  /// The caller of every change that names none itself.
  var caller: ExtensionCaller?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    changes = try container.decode(
      [ExtensionBatchChange].self, forKey: ProtoKey(stringValue: "changes"))
    caller = try container.caller()
  }
}

/// One change of a batch: `op` and the fields of the method it stands for (`put`: those of
/// `Create` and `Setattr`, plus `content`, standard base64).
struct ExtensionBatchChange: Decodable, Sendable {
  enum Operation: String, Decodable, Sendable {
    case mkdir, create, symlink, unlink, rmdir, rename, link, setattr, put
  }

  var operation: Operation
  var create: ExtensionCreateRequest
  var twoPaths: ExtensionTwoPathRequest
  var attributes: ExtensionSetattrRequest
  var content: [UInt8]
  var caller: ExtensionCaller? { create.caller }
  /// `put` only: the version (size and mtime) the file must still have, else ESTALE.
  var expected: (size: Int64, seconds: Int64, nanoseconds: UInt32)?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    guard let name = try container.proto(String.self, "op"),
      let operation = Operation(rawValue: name)
    else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: container.codingPath, debugDescription: "unknown or missing op"))
    }
    self.operation = operation
    create = try ExtensionCreateRequest(from: decoder)
    twoPaths = try ExtensionTwoPathRequest(from: decoder)
    attributes = try ExtensionSetattrRequest(from: decoder)
    if let size = try container.protoInt64("expectSize"),
      let seconds = try container.protoInt64("expectMtime")
    {
      expected = (size, seconds, try container.protoUInt32("expectMtimeNsec") ?? 0)
    }
    if let encoded = try container.proto(String.self, "content") {
      guard let data = Data(base64Encoded: encoded) else {
        throw DecodingError.dataCorrupted(
          .init(codingPath: container.codingPath, debugDescription: "content is not valid base64"))
      }
      content = Array(data)
    } else {
      content = []
    }
  }
}

struct ExtensionBatchResult: Encodable, Sendable {
  var attr: ExtensionAttr?
  /// The errno-prefixed message of a change that failed (section 3's format).
  var error: String?
}

struct ExtensionBatchResponse: Encodable, Sendable {
  var results: [ExtensionBatchResult]
}
