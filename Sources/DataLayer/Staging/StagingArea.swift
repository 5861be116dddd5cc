import Backend
import Foundation
import Logging
import Synchronization

/// Makes staging files in a folder and sends their changes to the remote: only the changed
/// ranges where the backend can write in place, else the whole file (atomically, by the backend).
public final class StagingArea: Sendable {
  private let backend: any RemoteFilesystem
  private let directory: String
  private let logger: Logger
  private let spares = SpareStagingFiles()
  /// The backend has no ranged reads: what a whole upload needs from the remote comes from one
  /// download of the file, not from reads of each gap.
  private let fillsFromWholeFile: Bool
  /// Bytes fetched per request when a whole upload completes a file from the remote.
  static let fillPiece = 8 << 20
  /// More changed ranges than this, covering most of a file, go as one whole upload instead.
  static let manyRanges = 64

  /// Staging files go into `directory`, e.g. `$TMPDIR` or `--cache-dir`; one is made and dropped
  /// here so a folder that cannot hold them fails the mount, not the first write.
  public init(
    backend: any RemoteFilesystem, directory: String, fillsFromWholeFile: Bool = false,
    logger: Logger
  ) throws {
    self.directory = directory
    self.fillsFromWholeFile = fillsFromWholeFile
    self.backend = backend
    self.logger = logger
    _ = try StagingFile(directory: directory, remote: nil)
  }

  /// An empty staging file, for `create` and `O_TRUNC` opens.
  public func makeEmpty() throws -> StagingFile {
    try StagingFile(directory: directory, remote: nil, spares: spares)
  }

  /// A staging file over the remote content of `version`: nothing is downloaded; reads of
  /// unwritten ranges go to the remote.
  public func make(over version: RemoteFileVersion) throws -> StagingFile {
    try StagingFile(directory: directory, remote: version, spares: spares)
  }

  /// Sends what `file` changed to `path`. Returns the remote attributes afterwards when the
  /// backend told them. The path is read when the upload starts: a rename while open moves the
  /// target, and an unlinked file (nil) must not be re-created.
  @discardableResult
  public func upload(_ file: StagingFile, to path: @escaping @Sendable () -> String?)
    async throws -> RemoteEntryState?
  {
    let answer = Mutex<RemoteEntryState?>(nil)
    try await file.uploadIfDirty { [backend, logger, directory, fillsFromWholeFile] changes in
      guard let target = path() else { return nil }
      do {
        let state = try await Self.send(
          changes, of: file, to: target, backend: backend,
          wholeFileIn: fillsFromWholeFile ? directory : nil)
        answer.withLock { $0 = state }
        return state?.attributes.version
      } catch {
        logger.error("upload of \(target) failed: \(error)")
        throw error
      }
    }
    return answer.withLock { $0 }
  }

  /// An `O_TRUNC` rewrite of existing content: the whole file, atomically. Else the changed
  /// ranges, in place (a file created here is all "changed"; the inode stays, which SQLite and
  /// editors check), unless most of the file changed in many pieces, or the backend cannot
  /// write ranges cheaply: then the whole file, after fetching what is not local.
  private static func send(
    _ changes: StagingFile.Changes, of file: StagingFile, to path: String,
    backend: any RemoteFilesystem, wholeFileIn folder: String?
  ) async throws -> RemoteEntryState? {
    if changes.replacesContent { return try await backend.upload(path, from: file.localPath) }
    let mostlyChanged =
      changes.dirty.byteCount * 2 >= changes.size && changes.dirty.ranges.count > manyRanges
    if !(changes.remoteLimit > 0 && mostlyChanged) {
      do {
        // Nothing of the remote's is needed: the whole local file, written from scratch.
        let fromScratch = changes.remoteLimit == 0
        let attributes = try await backend.writeRanges(
          path, from: file.localPath,
          ranges: fromScratch ? [0..<changes.size] : changes.dirty.ranges,
          truncateFirst: fromScratch ? 0 : changes.truncatedTo, size: changes.size)
        return attributes.map { RemoteEntryState($0) }
      } catch let error as RemoteError where error.errno == EOPNOTSUPP {
        // This backend writes whole files only.
      }
    }
    if let folder {
      try await fillGapsFromWholeFile(
        of: file, from: path, version: changes.remoteVersion, backend: backend, folder: folder)
    } else {
      try await fillGaps(of: file, from: path, version: changes.remoteVersion, backend: backend)
    }
    return try await backend.upload(path, from: file.localPath)
  }

  /// Completes the local file from the remote, checked against the remote size as every read is:
  /// a short read fails the upload, so nothing partial is ever sent as the file.
  private static func fillGaps(
    of file: StagingFile, from path: String, version: RemoteFileVersion?,
    backend: any RemoteFilesystem
  ) async throws {
    let expectedSize = version?.size ?? 0
    for gap in file.gaps() {
      var offset = gap.lowerBound
      while offset < gap.upperBound {
        let length = Int(min(UInt64(fillPiece), gap.upperBound - offset))
        let bytes = try await backend.read(
          path, offset: offset, length: length, expectedSize: expectedSize)
        guard bytes.count == length else {
          throw RemoteError(errno: EIO, "\(path) is shorter than when it was opened")
        }
        try file.fill(bytes, at: offset)
        offset += UInt64(length)
      }
    }
  }

  /// `fillGaps` for a backend without ranged reads: one download of the file into a temporary
  /// file in `folder` (checked against the size as every read is), and the gaps copied from it.
  private static func fillGapsFromWholeFile(
    of file: StagingFile, from path: String, version: RemoteFileVersion?,
    backend: any RemoteFilesystem, folder: String
  ) async throws {
    let gaps = file.gaps()
    guard !gaps.isEmpty else { return }
    var template = Array((folder + "/.sandbox-mount-fill.XXXXXX").utf8CString)
    let descriptor = mkstemp(&template)
    guard descriptor >= 0 else {
      throw LocalError(errno: errno, "making a file for a whole download", folder)
    }
    let copyPath = String(
      decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer {
      close(descriptor)
      unlink(copyPath)
    }
    _ = try await backend.download(path, expectedSize: version?.size ?? 0, to: copyPath)
    for gap in gaps {
      var offset = gap.lowerBound
      while offset < gap.upperBound {
        let length = Int(min(UInt64(fillPiece), gap.upperBound - offset))
        var bytes = [UInt8](repeating: 0, count: length)
        let got = bytes.withUnsafeMutableBytes {
          pread(descriptor, $0.baseAddress, length, off_t(offset))
        }
        guard got == length else {
          throw RemoteError(errno: EIO, "\(path) is shorter than when it was opened")
        }
        try file.fill(bytes, at: offset)
        offset += UInt64(length)
      }
    }
  }
}
