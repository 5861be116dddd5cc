import Backend

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A whole `RemoteFilesystem` from nothing but a `ProcessExecutor`: metadata through
/// `ExecFilesystem`; reads through `dd` (base64 where the output channel is text only), checked
/// against the size taken before them; uploads through stdin to a temporary name beside the
/// target, then the script's `replace` (size check, rename with the target's owner and mode,
/// the folder's mtime kept). Vendors with file routes use those instead and take from here only
/// what they lack, e.g. a ranged read of a large file read at random. A file passes through
/// memory whole: this is for small files, and for proving the exec layer in tests.
public struct ExecOnlyFilesystem: ExecMetadataBackend {
  public let exec: ExecFilesystem
  private let executor: any ProcessExecutor
  /// The sandbox's folder mounted as the root.
  private let rootFolder: String

  public init(executor: any ProcessExecutor, rootFolder: String = "/") {
    self.executor = executor
    let rootFolder =
      rootFolder == "/" ? "" : String(rootFolder.reversed().drop { $0 == "/" }.reversed())
    self.rootFolder = rootFolder
    exec = ExecFilesystem(executor: executor) { rootFolder + $0 }
  }

  public func capabilities() async -> RemoteCapabilities {
    RemoteCapabilities(
      rangedReads: true, hardLinks: true, inodeNumbers: true, richAttributes: true,
      owners: .ids, uploadKeepsOwnerAndMode: true, description: "exec only")
  }

  // MARK: data

  public func read(_ path: String, offset: UInt64, length: Int, expectedSize: UInt64) async throws
    -> [UInt8]
  {
    guard length > 0 else { return [] }
    return try await checkedRangeRead(
      context: "read \(path) at \(offset)", offset: offset, length: length,
      expectedSize: expectedSize
    ) {
      try await output(
        "dd if=\"$1\" bs=65536 iflag=skip_bytes,count_bytes skip=\"$2\" count=\"$3\" status=none",
        [relative(path), String(offset), String(length)], context: "read \(path) at \(offset)")
    }
  }

  public func download(_ path: String, expectedSize: UInt64, to localPath: String) async throws
    -> UInt64
  {
    let context = "download \(path)"
    let bytes = try await output("cat -- \"$1\"", [relative(path)], context: context)
    if expectedSize > 0, UInt64(bytes.count) < expectedSize {
      throw RemoteError(
        errno: EIO, "\(context): \(bytes.count) bytes arrived, \(expectedSize) were expected")
    }
    try Self.write(bytes, to: localPath, context: context)
    return UInt64(bytes.count)
  }

  @discardableResult
  public func upload(_ path: String, from localPath: String?) async throws -> RemoteEntryState? {
    let context = "upload \(path)"
    let content = try localPath.map { try Self.read($0, context: context) } ?? []
    return try await exec.upload(path, context: context) { temporary in
      let command = ProcessCommand(
        "/bin/sh", ["-c", "cat > \"$1\"", "sh", "./" + temporary.drop { $0 == "/" }],
        standardInput: content)
      let outcome = try await executor.run(command)
      guard outcome.exitCode == 0 else { throw failure(outcome, context: context) }
      return UInt64(content.count)
    }
  }

  // MARK: commands

  /// `./ROOT/a/b` for `/a/b`: relative to the working folder `/`, as the script's paths are,
  /// and never read as an option.
  private func relative(_ path: String) -> String {
    "./" + exec.sandboxPath(path).drop { $0 == "/" }
  }

  /// What `script` printed on stdout, decoded from base64 where the channel is text only.
  private func output(_ script: String, _ arguments: [String], context: String) async throws
    -> [UInt8]
  {
    let binary = executor.binarySafeOutput
    let command = ProcessCommand(
      "/bin/sh",
      // A pipe's status is its last command's: the command's own comes back through fd 4.
      [
        "-c",
        binary
          ? script
          : "exec 3>&1; s=$({ { \(script); echo $? >&4; } | base64 -w 0 >&3; } 4>&1); exit \"$s\"",
        "sh",
      ] + arguments)
    let outcome = try await executor.run(command)
    guard outcome.exitCode == 0 else { throw failure(outcome, context: context) }
    if binary { return outcome.stdout }
    guard let bytes = Data(base64Encoded: Data(outcome.stdout)) else {
      throw RemoteError(errno: EIO, "\(context): undecodable base64 output")
    }
    return [UInt8](bytes)
  }

  private func failure(_ outcome: ProcessOutcome, context: String) -> RemoteError {
    let message = String(decoding: outcome.stderr.prefix(500), as: UTF8.self)
    return RemoteError(
      errno: ExecOutput.errno(describedBy: message),
      "\(context): \(message.isEmpty ? outcome.status : message)")
  }

  // MARK: the local side

  private static func read(_ localPath: String, context: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: localPath) else {
      throw LocalError(errno: EIO, "read for \(context)", localPath)
    }
    return [UInt8](data)
  }

  private static func write(_ bytes: [UInt8], to localPath: String, context: String) throws {
    guard FileManager.default.createFile(atPath: localPath, contents: Data(bytes)) else {
      throw LocalError(errno: EIO, "write for \(context)", localPath)
    }
  }
}
