import CArchive
import Foundation
import Glibc
import Hummingbird
import NIOCore

extension VercelSandbox {
  /// `fs/write`: the body is a gzip-compressed tar. It is spooled to an unlinked temporary file
  /// as it arrives (memory stays at one buffer), then libarchive unpacks it under `x-cwd`:
  /// regular files (created or replaced, with the entry's mode), directories and symlinks.
  /// Parents are created as needed. Entry names cannot climb above the sandbox's `/`.
  func write(_ request: Request) async throws {
    let cwd = try Self.resolve(
      Self.resolveDirectory(request.headers[.init("x-cwd")!]), cwd: nil)
    let spool = try await services.blocking { try TarSpool() }
    var buffer = ByteBuffer()
    let flushSize = 1 << 20
    for try await chunk in request.body {
      var chunk = chunk
      buffer.writeBuffer(&chunk)
      if buffer.readableBytes >= flushSize {
        let full = buffer
        buffer = ByteBuffer()
        try await services.blocking { try spool.append(full) }
      }
    }
    let last = buffer
    let jail = services.jail
    let user = services.users.defaultUser
    try await services.blocking {
      try spool.append(last)
      try TarExtraction(jail: jail, user: user, base: cwd).extract(spool)
    }
  }
}

/// An unlinked temporary file holding a request body.
final class TarSpool: @unchecked Sendable {
  let fd: Int32
  private(set) var size = 0

  init() throws {
    let directory = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    var template = Array((directory + "/sandbox-agent-write-XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else {
      throw VercelError(507, "no_space", "cannot spool the upload: \(errnoText())")
    }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    self.fd = fd
  }

  deinit { close(fd) }

  func append(_ buffer: ByteBuffer) throws {
    try buffer.withUnsafeReadableBytes { bytes in
      var offset = 0
      while offset < bytes.count {
        let written = pwrite(
          fd, bytes.baseAddress! + offset, bytes.count - offset, off_t(size + offset))
        if written < 0 {
          if errno == EINTR { continue }
          throw VercelError(507, "no_space", "cannot spool the upload: \(errnoText())")
        }
        offset += written
      }
    }
    size += buffer.readableBytes
  }
}

/// Unpacks a gzip'ed tar into the jail with libarchive.
struct TarExtraction {
  let jail: RootJail
  let user: AgentUser
  let base: ProtocolPath

  func extract(_ spool: TarSpool) throws {
    guard spool.size > 0 else { return }
    guard lseek(spool.fd, 0, SEEK_SET) == 0 else { throw VercelError.badRequest(errnoText()) }
    guard let archive = archive_read_new() else {
      throw VercelError(500, "internal_error", "libarchive: out of memory")
    }
    defer { archive_read_free(archive) }
    archive_read_support_filter_gzip(archive)
    archive_read_support_format_tar(archive)
    guard archive_read_open_fd(archive, spool.fd, 64 * 1024) == ARCHIVE_OK else {
      throw Self.archiveError(archive, "cannot read the archive")
    }
    var entry: OpaquePointer?
    while true {
      let status = archive_read_next_header(archive, &entry)
      if status == ARCHIVE_EOF { break }
      guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
        throw Self.archiveError(archive, "malformed archive")
      }
      try extractEntry(entry, from: archive)
    }
  }

  private func extractEntry(_ entry: OpaquePointer, from archive: OpaquePointer) throws {
    guard let rawName = archive_entry_pathname(entry) else {
      throw VercelError.badRequest("archive entry without a name")
    }
    let name = String(cString: rawName)
    let path: ProtocolPath
    do {
      path = try ProtocolPath(validating: base.cleaned + "/" + name)
    } catch {
      throw VercelError(400, "invalid_path", error.sandboxMessage(name, noun: "entry"))
    }
    let mode = mode_t(archive_entry_perm(entry)) & 0o7777
    // A hard link comes as a regular entry without data; unpacked as one it would be empty.
    if archive_entry_hardlink(entry) != nil {
      throw VercelError(400, "unsupported_entry", "entry '\(name)' is a hard link")
    }
    switch mode_t(archive_entry_filetype(entry)) {
    case S_IFREG:
      try ensureParent(of: path)
      try writeFile(path, mode: mode, size: off_t(archive_entry_size(entry)), from: archive)
    case S_IFDIR:
      try ensureDirectory(path)
      let directory = try vercelSystemCall { () throws(SystemError) in
        try jail.open(path, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC, operation: "chmod")
      }
      if mode != 0 && fchmod(directory.raw, mode) != 0 {
        throw VercelError.from(SystemError("chmod", path.requested))
      }
    case S_IFLNK:
      guard let target = archive_entry_symlink(entry) else {
        throw VercelError.badRequest("symlink entry '\(name)' without a target")
      }
      try ensureParent(of: path)
      let parent = try vercelSystemCall { () throws(SystemError) in
        try jail.open(path.parent, flags: LinuxFlags.openPath | O_DIRECTORY, operation: "symlink")
      }
      if symlinkat(target, parent.raw, path.name) != 0 {
        if errno == EEXIST {
          _ = unlinkat(parent.raw, path.name, 0)
          if symlinkat(target, parent.raw, path.name) == 0 { return }
        }
        throw VercelError.from(SystemError("symlink", path.requested))
      }
    default:
      throw VercelError(
        400, "unsupported_entry", "entry '\(name)' is not a file, directory or symlink")
    }
  }

  private func ensureParent(of path: ProtocolPath) throws {
    if path.components.count > 1 { try ensureDirectory(path.parent) }
  }

  private func ensureDirectory(_ path: ProtocolPath) throws {
    try Self.ensureDirectories(path, jail: jail, user: user)
  }

  static func ensureDirectories(_ path: ProtocolPath, jail: RootJail, user: AgentUser)
    throws(VercelError)
  {
    do {
      try jail.ensureDirectories(path, owner: user)
    } catch {
      let failure: EnsureDirectoriesError = error
      switch failure {
      case .pathIsFile(let at):
        throw VercelError(400, "not_a_directory", "'\(at)' is not a directory")
      case .stat(let cause), .create(let cause), .chown(let cause):
        throw VercelError.from(cause)
      }
    }
  }

  /// Creates or truncates the file, copies the entry's data (holes stay holes) and sets its
  /// mode exactly (no umask).
  private func writeFile(
    _ path: ProtocolPath, mode: mode_t, size: off_t, from archive: OpaquePointer
  ) throws {
    let file = try vercelSystemCall { () throws(SystemError) in
      try jail.open(
        path, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600, operation: "open")
    }
    var block: UnsafeRawPointer?
    var length = 0
    var offset: la_int64_t = 0
    while true {
      let status = archive_read_data_block(archive, &block, &length, &offset)
      if status == ARCHIVE_EOF { break }
      guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
        throw Self.archiveError(archive, "cannot read '\(path.requested)' from the archive")
      }
      var done = 0
      while done < length {
        let written = pwrite(file.raw, block! + done, length - done, off_t(offset) + off_t(done))
        if written < 0 {
          if errno == EINTR { continue }
          throw VercelError.from(SystemError("write", path.requested))
        }
        done += written
      }
    }
    if ftruncate(file.raw, size) != 0 || fchmod(file.raw, mode) != 0 {
      throw VercelError.from(SystemError("write", path.requested))
    }
    if RootJail.mayChown(to: user) && fchown(file.raw, user.uid, user.gid) != 0 {
      throw VercelError.from(SystemError("chown", path.requested))
    }
  }

  static func archiveError(_ archive: OpaquePointer, _ what: String) -> VercelError {
    let detail = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    return .badRequest("\(what): \(detail)")
  }
}

/// Runs a jail call, turning its `SystemError` into Vercel's error.
func vercelSystemCall<T>(_ work: () throws(SystemError) -> T) throws(VercelError) -> T {
  do {
    return try work()
  } catch {
    throw VercelError.from(error)
  }
}
