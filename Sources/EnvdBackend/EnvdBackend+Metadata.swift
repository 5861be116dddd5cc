import Backend
import ExecLayer

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Full POSIX metadata: one extension call each, or on stock envd one fallback process each
/// (`ExecScript`), with envd's own primitives where they are exact enough.
extension EnvdBackend {
  public func capabilities() async -> RemoteCapabilities {
    let mode = (try? await serverMode()) ?? .stock
    if mode.hasExtension {
      return RemoteCapabilities(
        rangedReads: true, offsetWrites: mode.hasWriteRoute,
        atomicRenameFlags: true, hardLinks: true, batchChanges: mode.offers("Batch"),
        watch: true, inodeNumbers: true, richAttributes: true, owners: .ids,
        uploadKeepsOwnerAndMode: true, actsAsCaller: mode.actsAsCaller,
        description: mode.description)
    }
    // Its processes act as the caller when envd's user is root and the sandbox has setpriv;
    // otherwise as envd's user (ExecScript decides, in the sandbox).
    return RemoteCapabilities(
      rangedReads: true, offsetWrites: true, hardLinks: true, batchChanges: true, watch: true,
      owners: .ids, actsAsCaller: true, description: mode.description)
  }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    let context = "setattr \(path)"
    if try await serverMode().hasExtension {
      return try await extensionAttributes(
        "Setattr", ExtensionSetattr(path: client.protocolPath(path), changes: changes),
        context: context)
    }
    return try await runFallback(path, ExecScript.steps(for: changes), context: context)
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    if try await serverMode().hasExtension {
      return try await extensionCreate("Create", path, mode: mode & 0o7777, exclusive: exclusive)
    }
    return RemoteEntryState(
      try await runFallback(
        path, [.create(mode: mode, exclusive: exclusive), .stat], context: "create \(path)"))
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    if path == "/" { throw RemoteError(errno: EEXIST, "mkdir /: the mount root exists") }
    if try await serverMode().hasExtension {
      return try await extensionCreate("Mkdir", path, mode: mode & 0o7777)
    }
    // `mkdir -m`: exact mode and errors in one process, where envd's MakeDir is `mkdir -p`
    // with a fixed mode and would need a parent check and a chmod.
    return RemoteEntryState(
      try await runFallback(path, [.makeDirectory(mode: mode), .stat], context: "mkdir \(path)"))
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    let context = "mknod \(path)"
    if try await serverMode().hasExtension {
      return try await extensionCreate("Mknod", path, mode: mode, device: device)
    }
    let permissions = mode & 0o7777
    switch mode & 0o170000 {
    case 0o010000:
      return RemoteEntryState(
        try await runFallback(path, [.makeFifo(mode: permissions), .stat], context: context))
    case 0o020000, 0o060000:
      // mknod(1) as the caller: EPERM only where the sandbox refuses (no CAP_MKNOD).
      let step = ExecScript.Step.makeDevice(
        kind: mode & 0o170000 == 0o020000 ? "c" : "b", major: Self.major(device),
        minor: Self.minor(device), mode: permissions)
      return RemoteEntryState(try await runFallback(path, [step, .stat], context: context))
    case 0o140000:
      return RemoteEntryState(
        try await runFallback(path, [.makeSocket(mode: permissions), .stat], context: context))
    case 0o100000, 0:
      return try await createFile(path, mode: mode, exclusive: true)
    default:
      throw RemoteError(errno: EINVAL, "\(context): unknown file type")
    }
  }

  /// glibc's `major`/`minor` of a 64-bit dev_t.
  static func major(_ device: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: ((device >> 8) & 0xFFF) | ((device >> 32) & ~0xFFF))
  }

  static func minor(_ device: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: (device & 0xFF) | ((device >> 12) & ~0xFF))
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    if try await serverMode().hasExtension {
      return try await extensionCreate("Symlink", path, mode: 0o777, target: target)
    }
    var attributes = try await runFallback(
      path, [.symlink(target: target), .stat], context: "symlink \(path)")
    attributes.symlinkTarget = target
    return RemoteEntryState(attributes)
  }

  public func readLink(_ path: String) async throws -> String {
    let context = "readlink \(path)"
    if try await serverMode().hasExtension { return try await extensionReadLink(path) }
    let result = try await fallback.run(client.protocolPath(path), [.readLink])
    try result.check(context: context)
    guard let text = result.linkText else {
      throw RemoteError(errno: EIO, "\(context): no link text in the answer")
    }
    return text
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    let context = "link \(destination) to \(source)"
    if try await serverMode().hasExtension {
      return try await extensionCreated(
        "Link",
        ExtensionTwoPaths(from: client.protocolPath(source), to: client.protocolPath(destination)),
        context: context)
    }
    return RemoteEntryState(
      try await runFallback(
        destination, [.link(from: client.protocolPath(source)), .stat], context: context))
  }

  @discardableResult
  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    let context = "rename \(source) to \(destination)"
    defer {
      knownDirectories.forget(source)
      knownDirectories.forget(destination)
    }
    if try await serverMode().hasExtension {
      return try await extensionRename(source, destination, flags: flags)
    }
    if flags.contains(.exchange) {
      // envd's Move is a plain rename(2) and coreutils' `mv --exchange` is too new to rely on:
      // EINVAL, as a Linux filesystem without RENAME_EXCHANGE answers (callers fall back).
      throw RemoteError(errno: EINVAL, "\(context): RENAME_EXCHANGE needs the agent extension")
    }
    if flags.contains(.noReplace) {
      // Not atomic on stock envd: a check, then Move (documented in the README).
      if try await statIfPresent(destination, context: context) != nil {
        throw RemoteError(errno: EEXIST, "\(context): the destination exists")
      }
    }
    try await stockRename(from: source, to: destination)
    return RemoteNameChange()
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    let context = "fsync \(path)"
    if try await serverMode().hasExtension {
      _ = try await extensionCall(
        "Fsync", ExtensionFsync(path: client.protocolPath(path), dataOnly: dataOnly),
        as: ExtensionEmpty.self, context: context)
      return
    }
    let result = try await fallback.run(client.protocolPath(path), [.fsync(dataOnly: dataOnly)])
    try result.check(context: context)
  }

  /// Runs one fallback job on `path` and returns the attributes its final stat printed.
  func runFallback(_ path: String, _ steps: [ExecScript.Step], context: String) async throws
    -> RemoteAttributes
  {
    try await fallback.run(client.protocolPath(path), steps).attributes(context: context)
  }
}
