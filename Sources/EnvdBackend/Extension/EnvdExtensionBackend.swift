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

/// envd with the sandbox-agent extension: every operation is one extension round trip
/// (docs/agent-extension.md §6), uploads go through its replace route, and batches through
/// its `Batch` method.
public final class EnvdExtensionBackend: EnvdRemote, Sendable {
  public let connection: EnvdConnection
  let offer: ExtensionOffer

  init(connection: EnvdConnection, offer: ExtensionOffer) {
    self.connection = connection
    self.offer = offer
  }

  public func capabilities() async -> RemoteCapabilities {
    RemoteCapabilities(
      rangedReads: true, offsetWrites: offer.writeRoute != nil, atomicRenameFlags: true,
      hardLinks: true, batchChanges: offer.offers("Batch"), watch: true, inodeNumbers: true,
      richAttributes: true, owners: .ids, uploadKeepsOwnerAndMode: true,
      actsAsCaller: offer.actsAsCaller, description: ServerMode.agentExtension(offer).description)
  }

  // MARK: RemoteFilesystem

  public func attributes(of path: String) async throws -> RemoteAttributes {
    try await extensionAttributes(
      "Stat", ExtensionPath(path: client.protocolPath(path)), context: "stat \(path)")
  }

  public func listDirectory(_ path: String) async throws -> [RemoteEntry] {
    let answer = try await extensionCall(
      "ListDir", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionListDirResponse.self, context: "list \(path)")
    return (answer.entries ?? []).compactMap { entry in
      // A name that is not UTF-8 cannot be a Swift path; leave it out rather than mangle it.
      guard let name = entry.name else { return nil }
      return RemoteEntry(name: name, attributes: entry.attributes)
    }
  }

  public func makeDirectory(_ path: String, mode: UInt32) async throws {
    _ = try await createDirectory(path, mode: mode)
  }

  @discardableResult
  public func removeFile(_ path: String) async throws -> RemoteAttributes? {
    defer { knownDirectories.forget(path) }
    return try await remove(path, directory: false)
  }

  @discardableResult
  public func removeDirectory(_ path: String) async throws -> RemoteAttributes? {
    defer { knownDirectories.forget(path) }
    return try await remove(path, directory: true)
  }

  public func rename(from source: String, to destination: String) async throws {
    try await rename(from: source, to: destination, flags: [])
  }

  @discardableResult
  public func rename(from source: String, to destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    defer {
      knownDirectories.forget(source)
      knownDirectories.forget(destination)
    }
    let message = ExtensionTwoPaths(
      from: client.protocolPath(source), to: client.protocolPath(destination),
      flags: flags.isEmpty ? nil : flags.rawValue)
    return try await extensionCall(
      "Rename", message, as: ExtensionChangeResponse.self,
      context: "rename \(source) to \(destination)"
    ).nameChange
  }

  public func filesystemStatistics() async throws -> RemoteFilesystemStatistics {
    try await extensionCall(
      "Statfs", ExtensionEmpty(), as: ExtensionStatfsResponse.self, context: "statfs"
    ).statistics
  }

  public func setAttributes(_ path: String, _ changes: RemoteAttributeChanges) async throws
    -> RemoteAttributes
  {
    try await extensionAttributes(
      "Setattr", ExtensionSetattr(path: client.protocolPath(path), changes: changes),
      context: "setattr \(path)")
  }

  public func createFile(_ path: String, mode: UInt32, exclusive: Bool) async throws
    -> RemoteEntryState
  {
    try await create("Create", path, mode: mode & 0o7777, exclusive: exclusive)
  }

  public func createDirectory(_ path: String, mode: UInt32) async throws -> RemoteEntryState {
    if path == "/" { throw RemoteError(errno: EEXIST, "mkdir /: the mount root exists") }
    return try await create("Mkdir", path, mode: mode & 0o7777)
  }

  public func makeNode(_ path: String, mode: UInt32, device: UInt64) async throws
    -> RemoteEntryState
  {
    try await create("Mknod", path, mode: mode, device: device)
  }

  public func createSymlink(_ path: String, target: String) async throws -> RemoteEntryState {
    try await create("Symlink", path, mode: 0o777, target: target)
  }

  public func readLink(_ path: String) async throws -> String {
    let answer = try await extensionCall(
      "Readlink", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionReadlinkResponse.self, context: "readlink \(path)")
    if let target = answer.target { return target }
    if let encoded = answer.targetBytes, let raw = Data(base64Encoded: encoded) {
      return String(decoding: raw, as: UTF8.self)
    }
    throw RemoteError(errno: EIO, "readlink \(path): the answer has no target")
  }

  public func link(from source: String, to destination: String) async throws -> RemoteEntryState {
    try await created(
      "Link",
      ExtensionTwoPaths(from: client.protocolPath(source), to: client.protocolPath(destination)),
      context: "link \(destination) to \(source)")
  }

  public func synchronize(_ path: String, dataOnly: Bool) async throws {
    _ = try await extensionCall(
      "Fsync", ExtensionFsync(path: client.protocolPath(path), dataOnly: dataOnly),
      as: ExtensionEmpty.self, context: "fsync \(path)")
  }
}

extension EnvdExtensionBackend {

  /// Returns the parent's attributes after the removal (nil from an agent that does not say).
  func remove(_ path: String, directory: Bool) async throws -> RemoteAttributes? {
    try await extensionCall(
      directory ? "Rmdir" : "Unlink", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionChangeResponse.self, context: "\(directory ? "rmdir" : "unlink") \(path)"
    ).parent?.attributes
  }

  func create(
    _ method: String, _ path: String, mode: UInt32, exclusive: Bool? = nil,
    target: String? = nil, device: UInt64? = nil
  ) async throws -> RemoteEntryState {
    let message = ExtensionCreate(
      path: client.protocolPath(path), mode: mode, exclusive: exclusive,
      rdev: device.map(String.init), target: target)
    return try await created(method, message, context: "\(method.lowercased()) \(path)")
  }

  func created(_ method: String, _ message: some Encodable, context: String)
    async throws -> RemoteEntryState
  {
    let answer = try await extensionCall(
      method, message, as: ExtensionChangeResponse.self, context: context)
    guard let created = answer.created else {
      throw RemoteError(errno: EIO, "\(context): the answer has no attr")
    }
    return created
  }

}
