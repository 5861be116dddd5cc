import Glibc
import NIOCore

/// One file being written by `POST /files`, as envd's `processFile` does it: parents created,
/// an existing file chowned to the user and truncated in place (same inode), no fsync, no rename.
/// Used by one upload at a time on the thread pool.
final class UploadTarget: @unchecked Sendable {
  let path: ProtocolPath
  private let file: FileDescriptor
  /// The request's Content-Length, for envd's ENOSPC message.
  private let declaredLength: Int?

  init(path: ProtocolPath, user: AgentUser, jail: RootJail, declaredLength: Int?)
    throws(UploadFailure)
  {
    self.path = path
    self.declaredLength = declaredLength
    do {
      try jail.ensureDirectories(path.parent, owner: user)
    } catch {
      throw UploadFailure(500, "error ensuring directories: \(error)")
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
        500,
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
      throw UploadFailure(500, "error opening file: \(error)")
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

  /// envd's answer entry for this file.
  var entry: [String: String] { ["path": path.requested, "name": path.name, "type": "file"] }
}
