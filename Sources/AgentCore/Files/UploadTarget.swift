import Glibc
import Logging
import NIOCore

/// One entry of envd's `POST /files` answer (`UploadSuccess`); no size or times.
struct UploadEntry: Encodable, Sendable {
  var name: String
  var path: String
  var type = "file"
  /// The `user.e2b.*` set read back from the file; left out when empty.
  var metadata: [String: String]?
}

/// One file being written by `POST /files`, as envd's `processFile` does it: parents created,
/// an existing file chowned to the user and truncated in place (same inode), no fsync, no rename.
/// Used by one upload at a time on the thread pool.
final class UploadTarget: @unchecked Sendable {
  let path: ProtocolPath
  private let file: FileDescriptor
  /// The request's Content-Length, for envd's ENOSPC message.
  private let declaredLength: Int?
  private let metadata: UploadMetadata
  private let logger: Logger

  init(
    path: ProtocolPath, user: AgentUser, jail: RootJail, declaredLength: Int?,
    metadata: UploadMetadata, logger: Logger
  ) throws(UploadFailure) {
    self.path = path
    self.declaredLength = declaredLength
    self.metadata = metadata
    self.logger = logger
    do {
      try jail.ensureDirectories(path.parent, owner: user)
    } catch {
      throw UploadFailure(
        error.isCallersFault ? 400 : 500, "error ensuring directories: \(error)")
    }
    var chowned = false
    do {
      let existing = try jail.open(path, flags: LinuxFlags.openPath, operation: "stat")
      let info = try RootJail.fstat(existing, operation: "stat", path: path)
      if info.isDirectory { throw UploadFailure(400, "path is a directory: \(path.requested)") }
      try jail.chown(existing, path: path, to: user)
      chowned = true
    } catch let error as SystemError where error.code == ENOENT {
      // A new file.
    } catch let error as SystemError {
      throw UploadFailure(
        error.isCallersFault ? 400 : 500,
        error.operation == "chown"
          ? "error changing file ownership: \(error)" : "error getting file info: \(error)")
    } catch let error as UploadFailure {
      throw error
    } catch {
      throw UploadFailure(500, "\(error)")
    }
    do {
      file = try jail.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o666)
    } catch  where error.code == ENOSPC {
      throw UploadFailure(507, "not enough inodes available: \(error)")
    } catch {
      throw UploadFailure(error.isCallersFault ? 400 : 500, "error opening file: \(error)")
    }
    if !chowned {
      do {
        try jail.chown(file, path: path, to: user)
      } catch {
        throw UploadFailure(500, "error changing file ownership: \(error)")
      }
    }
  }

  func write(_ buffer: ByteBuffer) throws(UploadFailure) {
    let failure = buffer.withUnsafeReadableBytes { file.writeAll($0).failure }
    guard failure != 0 else { return }
    if failure == ENOSPC {
      if let declaredLength, declaredLength > 0 {
        throw UploadFailure(
          507, "attempted to write \(declaredLength) bytes: not enough disk space available")
      }
      throw UploadFailure(507, "not enough disk space available")
    }
    throw UploadFailure(
      500, "error writing file: write \(path.requested): \(SystemError.reason(failure))")
  }

  /// After the body: envd replaces the file's metadata (even with none) and answers with what
  /// the file then holds.
  func finish() throws(UploadFailure) -> UploadEntry {
    do {
      try UserMetadata.replace(file.raw, with: metadata.values)
    } catch  where error.unsupported {
      // A file system without xattrs: envd keeps the body and drops the metadata.
      logger.warning("metadata not stored on \(path.requested): no xattrs on its file system")
    } catch  where error.code == ENOSPC || error.code == EDQUOT {
      throw UploadFailure(
        507, "not enough space for file metadata: \(error.message(path: path.requested))")
    } catch {
      throw UploadFailure(
        500, "error writing file metadata: \(error.message(path: path.requested))")
    }
    let stored = UserMetadata.read(hostPath: "/proc/self/fd/\(file.raw)", follow: true)
    return UploadEntry(
      name: path.name, path: path.requested, metadata: stored.isEmpty ? nil : stored)
  }
}
