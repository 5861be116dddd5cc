import CoreWeaveProtocol
import Foundation
import Glibc

/// `ReadFile` and `WriteFile`: whole files up to `fileCap`, as one message each way. Past the
/// cap the answer is CWSANDBOX_FILE_TOO_LARGE with `size_bytes`/`max_size_bytes`, and the SDK
/// moves the file through `StreamExec` (`cat`) instead.
extension CoreWeaveSandbox {
  func readFile(_ request: Coreweave_Sandbox_V1_ReadFileRequest) async throws
    -> Coreweave_Sandbox_V1_ReadFileResponse
  {
    try check(request.sandboxID)
    let path = try Self.resolve(request.path)
    let jail = services.jail
    let cap = fileCap
    var content = try await services.blocking {
      try Self.readWhole(path, jail: jail, cap: cap)
    }
    let cut = min(content.count, TruncationFault.bytesToCut())
    if cut > 0 { content.removeLast(cut) }
    return .with { $0.content = content }
  }

  func writeFile(_ request: Coreweave_Sandbox_V1_WriteFileRequest) async throws
    -> Coreweave_Sandbox_V1_WriteFileResponse
  {
    try check(request.sandboxID)
    let path = try Self.resolve(request.path)
    guard request.content.count <= fileCap else {
      throw tooLarge(path.requested, size: request.content.count)
    }
    let jail = services.jail
    let user = services.users.defaultUser
    let content = request.content
    try await services.blocking {
      try Self.writeWhole(content, to: path, jail: jail, user: user)
    }
    return .init()
  }

  func tooLarge(_ path: String, size: Int) -> CoreWeaveError {
    CoreWeaveError(
      .failedPrecondition, .fileTooLarge,
      "\(path) is \(size) bytes, over the \(fileCap)-byte limit of one call; use streaming",
      metadata: ["filepath": path, "size_bytes": String(size), "max_size_bytes": String(fileCap)])
  }

  /// Reads to EOF (a `/proc` file reports size 0), never more than `cap` bytes.
  private static func readWhole(_ path: ProtocolPath, jail: RootJail, cap: Int)
    throws(CoreWeaveError) -> Data
  {
    let file: FileDescriptor
    let info: stat
    do {
      file = try jail.open(path, flags: O_RDONLY | O_CLOEXEC, operation: "open")
      info = try RootJail.fstat(file, operation: "stat", path: path)
    } catch {
      throw .file(error, path: path.requested)
    }
    if info.isDirectory {
      throw .file(SystemError("read", path.requested, code: EISDIR), path: path.requested)
    }
    let tooLarge = CoreWeaveError(
      .failedPrecondition, .fileTooLarge,
      "\(path.requested) is \(info.st_size) bytes, over the \(cap)-byte limit of one call; use streaming",
      metadata: [
        "filepath": path.requested, "size_bytes": String(info.st_size),
        "max_size_bytes": String(cap),
      ])
    if Int(info.st_size) > cap { throw tooLarge }
    var content = Data(count: min(Int(info.st_size), cap) + 1)
    var total = 0
    while true {
      if total == content.count {
        guard total <= cap else { throw tooLarge }
        content.count = min(max(total * 2, 64 << 10), cap + 1)
      }
      let count = content.withUnsafeMutableBytes { buffer in
        Glibc.read(file.raw, buffer.baseAddress! + total, buffer.count - total)
      }
      if count < 0 {
        if errno == EINTR { continue }
        throw .file(SystemError("read", path.requested), path: path.requested)
      }
      if count == 0 { break }
      total += count
    }
    if total > cap { throw tooLarge }
    content.count = total
    return content
  }

  /// Creates or truncates in place (same inode), like the SDK's own `cat > path` fallback: the
  /// parent must exist.
  private static func writeWhole(
    _ content: Data, to path: ProtocolPath, jail: RootJail, user: AgentUser
  ) throws(CoreWeaveError) {
    do throws(SystemError) {
      let existed = (try? jail.lstat(path)) != nil
      let file = try jail.open(
        path, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o666, operation: "open")
      if !existed { try jail.chown(file, path: path, to: user) }
      let failure = content.withUnsafeBytes { file.writeAll($0).failure }
      if failure != 0 { throw SystemError("write", path.requested, code: failure) }
    } catch {
      throw .file(error, path: path.requested)
    }
  }
}
