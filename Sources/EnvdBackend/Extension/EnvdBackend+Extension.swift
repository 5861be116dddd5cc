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

/// The operations through the agent extension: one round trip each (docs/agent-extension.md §6).
extension EnvdBackend {
  func extensionStat(_ path: String) async throws -> RemoteAttributes {
    try await extensionAttributes(
      "Stat", ExtensionPath(path: client.protocolPath(path)), context: "stat \(path)")
  }

  func extensionList(_ path: String) async throws -> [RemoteEntry] {
    let answer = try await extensionCall(
      "ListDir", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionListDirResponse.self, context: "list \(path)")
    return (answer.entries ?? []).compactMap { entry in
      // A name that is not UTF-8 cannot be a Swift path; leave it out rather than mangle it.
      guard let name = entry.name else { return nil }
      return RemoteEntry(name: name, attributes: entry.attributes)
    }
  }

  /// Returns the parent's attributes after the removal (nil from an agent that does not say).
  func extensionRemove(_ path: String, directory: Bool) async throws -> RemoteAttributes? {
    try await extensionCall(
      directory ? "Rmdir" : "Unlink", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionChangeResponse.self, context: "\(directory ? "rmdir" : "unlink") \(path)"
    ).parent?.attributes
  }

  func extensionCreate(
    _ method: String, _ path: String, mode: UInt32, exclusive: Bool? = nil,
    target: String? = nil, device: UInt64? = nil
  ) async throws -> RemoteEntryState {
    let message = ExtensionCreate(
      path: client.protocolPath(path), mode: mode, exclusive: exclusive,
      rdev: device.map(String.init), target: target)
    return try await extensionCreated(method, message, context: "\(method.lowercased()) \(path)")
  }

  func extensionCreated(_ method: String, _ message: some Encodable, context: String)
    async throws -> RemoteEntryState
  {
    let answer = try await extensionCall(
      method, message, as: ExtensionChangeResponse.self, context: context)
    guard let created = answer.created else {
      throw RemoteError(errno: EIO, "\(context): the answer has no attr")
    }
    return created
  }

  func extensionRename(_ source: String, _ destination: String, flags: RemoteRenameFlags)
    async throws -> RemoteNameChange
  {
    let message = ExtensionTwoPaths(
      from: client.protocolPath(source), to: client.protocolPath(destination),
      flags: flags.isEmpty ? nil : flags.rawValue)
    return try await extensionCall(
      "Rename", message, as: ExtensionChangeResponse.self,
      context: "rename \(source) to \(destination)"
    ).nameChange
  }

  func extensionReadLink(_ path: String) async throws -> String {
    let answer = try await extensionCall(
      "Readlink", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionReadlinkResponse.self, context: "readlink \(path)")
    if let target = answer.target { return target }
    if let encoded = answer.targetBytes, let raw = Data(base64Encoded: encoded) {
      return String(decoding: raw, as: UTF8.self)
    }
    throw RemoteError(errno: EIO, "readlink \(path): the answer has no target")
  }

  func extensionStatistics() async throws -> RemoteFilesystemStatistics {
    try await extensionCall(
      "Statfs", ExtensionEmpty(), as: ExtensionStatfsResponse.self, context: "statfs"
    ).statistics
  }
}
