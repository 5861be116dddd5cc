import Backend
import ExecLayer
import Foundation
import HTTPTransport

/// Batches on stock envd, which has no `Batch` method: `ExecBatch`, with the small files' bytes
/// in ONE multipart `POST /files`.
extension EnvdStockBackend {
  /// Its processes act as one caller per call. (`EnvdRemote.applyBatch(_:)` sends a batch as
  /// the task's caller through this.)
  public func applyBatch(_ changes: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await applyInRunsOfOneCaller(changes, callers: callers) { run in
      try await batches.apply(run) { try await stage($0) }
    }
  }

  /// Every file's bytes in one multipart request.
  func stage(_ files: [ExecBatch.StagedFile]) async throws {
    var body: [UInt8] = []
    let boundary = "sandbox-mount-" + String(UInt64.random(in: 0..<(1 << 60)), radix: 36)
    for file in files {
      let (temporary, content) = (file.path, file.content)
      if temporary.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) {
        body += Array(
          ("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(temporary)\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n").utf8)
        body += content
        body += Array("\r\n".utf8)
      } else {
        // A name a multipart header cannot carry plainly: its own upload, path in the query.
        try await postBytes(content, toProtocolPath: temporary)
      }
    }
    guard !body.isEmpty else { return }
    body += Array("--\(boundary)--\r\n".utf8)
    try await postFiles(
      url: client.multipartFilesURL, contentType: "multipart/form-data; boundary=\(boundary)",
      body: body, context: "upload of \(files.count) files")
  }

  private func postBytes(_ content: [UInt8], toProtocolPath path: String) async throws {
    let url = client.multipartFilesURL
    try await postFiles(
      url: url + (url.contains("?") ? "&" : "?") + "path=" + QueryEncoding.encode(path),
      contentType: "application/octet-stream", body: content, context: "upload \(path)")
  }

  private func postFiles(url: String, contentType: String, body: [UInt8], context: String)
    async throws
  {
    let response = try await client.files(
      HTTPRequest(
        method: .post, url: url, headers: ["Content-Type: \(contentType)"], body: .bytes(body),
        sink: .memory(expected: 0, limit: 1 << 20), bulk: true))
    if let failure = client.transportError(response, context: context) { throw failure }
    guard response.isSuccessStatus else {
      throw EnvdErrorMapping.remoteError(
        status: response.status, body: response.body, context: context)
    }
  }
}
