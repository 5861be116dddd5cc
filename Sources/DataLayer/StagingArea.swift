import Backend
import Foundation
import Logging

/// Makes staging files in a folder, fills them from the remote and uploads them back.
public final class StagingArea: Sendable {
  private let backend: any RemoteFilesystem
  private let directory: String
  private let logger: Logger

  /// Staging files go into `directory`, e.g. `$TMPDIR` or `--cache-dir`; one is made and dropped
  /// here so a folder that cannot hold them fails the mount, not the first write.
  public init(backend: any RemoteFilesystem, directory: String, logger: Logger) throws {
    self.directory = directory
    self.backend = backend
    self.logger = logger
    _ = try StagingFile(directory: directory)
  }

  /// An empty staging file, for `create` and `O_TRUNC` opens.
  public func makeEmpty() throws -> StagingFile {
    try StagingFile(directory: directory)
  }

  /// A staging file holding the whole current content of `path`, whose size at the stat before
  /// this download was `expectedSize`. A failed or short download throws: nothing partial is ever
  /// handed out as the file's content.
  public func makeWithContent(of path: String, expectedSize: UInt64) async throws -> StagingFile {
    let file = try StagingFile(directory: directory)
    do {
      _ = try await backend.download(path, expectedSize: expectedSize, to: file.localPath)
    } catch let error as RemoteError where error.errno == ENOENT {
      throw error
    } catch {
      logger.error("download of \(path) for writing failed: \(error)")
      throw RemoteError(errno: EIO, "download of \(path) failed: \(error)")
    }
    return file
  }

  /// Uploads `file` to `path` if it has writes the remote has not seen.
  public func uploadIfDirty(_ file: StagingFile, to path: @escaping @Sendable () -> String?)
    async throws
  {
    try await file.uploadIfDirty { [backend, logger] in
      // The path is read when the upload starts: a rename while open moves the target, and an
      // unlinked file (nil) must not be re-created.
      guard let target = path() else { return }
      do {
        try await backend.upload(target, from: file.localPath)
      } catch {
        logger.error("upload of \(target) failed: \(error)")
        throw error
      }
    }
  }
}
