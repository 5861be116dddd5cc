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

  func extensionRemove(_ path: String, directory: Bool) async throws {
    _ = try await extensionCall(
      directory ? "Rmdir" : "Unlink", ExtensionPath(path: client.protocolPath(path)),
      as: ExtensionEmpty.self, context: "\(directory ? "rmdir" : "unlink") \(path)")
  }

  func extensionCreate(
    _ method: String, _ path: String, mode: UInt32, exclusive: Bool? = nil,
    target: String? = nil, device: UInt64? = nil
  ) async throws -> RemoteAttributes {
    let message = ExtensionCreate(
      path: client.protocolPath(path), mode: mode, exclusive: exclusive,
      rdev: device.map(String.init), target: target)
    return try await extensionAttributes(
      method, message, context: "\(method.lowercased()) \(path)")
  }

  func extensionRename(_ source: String, _ destination: String, flags: RemoteRenameFlags)
    async throws
  {
    let message = ExtensionTwoPaths(
      from: client.protocolPath(source), to: client.protocolPath(destination),
      flags: flags.isEmpty ? nil : flags.rawValue)
    _ = try await extensionCall(
      "Rename", message, as: ExtensionEmpty.self,
      context: "rename \(source) to \(destination)")
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

  /// Replaces the content of an existing file in place (same inode, owner and mode) through the
  /// offset-write route with `size=0`. false when the file does not exist (use envd's upload).
  func extensionRewrite(_ path: String, route: String, body: RequestBody, headers: [String])
    async throws -> Bool
  {
    let context = "upload \(path)"
    let query = "?path=" + QueryEncoding.encode(client.protocolPath(path)) + "&offset=0&size=0"
    let response = try await client.post(
      route: route + query,
      HTTPRequest(
        method: .post, url: "", headers: headers, body: body,
        sink: .memory(expected: 0, limit: 1 << 20), bulk: true))
    if let failure = client.transportError(response, context: context) { throw failure }
    if response.status == 200 { return true }
    let error = ExtensionErrno.remoteError(
      status: response.status, body: response.body, context: context)
    if error.errno == ENOENT { return false }
    throw error
  }
}
