import Backend
import Foundation

/// Batches through the extension's `Batch` method (docs/agent-extension.md §4.6): one request,
/// an answer per change.
extension EnvdExtensionBackend {
  /// Each change names its own caller (`"caller"` of the change), when the agent honours it.
  public func applyBatch(_ changes: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    guard offer.offers("Batch") else {
      // An agent with the extension but no Batch: its one-call methods beat processes.
      throw RemoteError(errno: EOPNOTSUPP, "the sandbox has no batch method")
    }
    let context = "batch of \(changes.count) changes"
    let sendCallers = offer.actsAsCaller
    let batch = ExtensionBatch(
      changes: zip(changes, callers).map { change, caller in
        var message = ExtensionBatchChange(change, client: client)
        message.caller = sendCallers ? caller : nil
        return message
      })
    // The top-level caller stays out: each change says its own (none: the agent itself).
    let answer = try await CallerIdentity.$current.withValue(nil) {
      try await extensionCall("Batch", batch, as: ExtensionBatchResponse.self, context: context)
    }
    guard answer.results.count == changes.count else {
      throw RemoteError(
        errno: EIO, "\(context): \(answer.results.count) answers for \(changes.count) changes")
    }
    return zip(changes, answer.results).map { change, result in
      if let error = result.error {
        let number = ExtensionErrno.errno(prefixOf: error) ?? EIO
        return .failure(RemoteError(errno: number, "\(change.path): \(error)"))
      }
      return .success(result.attr?.attributes)
    }
  }
}

/// The `Batch` request: `{"changes":[{…},…]}`, each change a flat object.
struct ExtensionBatch: Encodable, JSONObjectEncodable {
  var changes: [ExtensionBatchChange]

  func write(to json: inout JSONObjectWriter) {
    var array: [UInt8] = [UInt8(ascii: "[")]
    for (index, change) in changes.enumerated() {
      if index > 0 { array.append(UInt8(ascii: ",")) }
      array += change.jsonBytes
    }
    array.append(UInt8(ascii: "]"))
    json.addRaw("changes", array)
  }

  /// Only `JSONObjectWriter` writes a batch (`rpcResponse` prefers it): nested flat objects
  /// have no Codable form here, and a wrong body must never go out silently.
  func encode(to encoder: any Encoder) throws {
    throw EncodingError.invalidValue(
      self, .init(codingPath: [], debugDescription: "a batch is written by JSONObjectWriter"))
  }
}

struct ExtensionBatchChange: JSONObjectEncodable {
  var operation: String
  var path: String
  var mode: UInt32?
  var target: String?
  var content: String?
  var attributes: ExtensionSetattr?
  var expectedSize: String?
  var expectedTime: String?
  var expectedTimeNanoseconds: UInt32?
  var caller: CallerIdentity?

  init(_ change: RemoteBatchChange, client: EnvdClient) {
    switch change {
    case .makeDirectory(let path, let mode):
      operation = "mkdir"
      self.path = client.protocolPath(path)
      self.mode = mode & 0o7777
    case .put(let path, let content, let mode, let changes, let expected):
      operation = "put"
      self.path = client.protocolPath(path)
      self.mode = mode & 0o7777
      self.content = Data(content).base64EncodedString()
      expectedSize = expected.map { String($0.size) }
      expectedTime = expected.map { String($0.modificationTime.seconds) }
      expectedTimeNanoseconds = expected.map { UInt32(clamping: $0.modificationTime.nanoseconds) }
      var times = changes
      times.mode = nil
      times.size = nil
      attributes = ExtensionSetattr(path: self.path, changes: times)
    case .setAttributes(let path, let changes):
      operation = "setattr"
      self.path = client.protocolPath(path)
      attributes = ExtensionSetattr(path: self.path, changes: changes)
    case .removeFile(let path):
      operation = "unlink"
      self.path = client.protocolPath(path)
    case .removeDirectory(let path):
      operation = "rmdir"
      self.path = client.protocolPath(path)
    case .symlink(let path, let target):
      operation = "symlink"
      self.path = client.protocolPath(path)
      self.target = target
    }
  }

  func write(to json: inout JSONObjectWriter) {
    json.add("op", operation)
    if let attributes {
      // Setattr's fields, path included; a put's mode is its own.
      attributes.write(to: &json)
    } else {
      json.add("path", path)
    }
    if operation != "setattr" { json.add("mode", mode) }
    json.add("target", target)
    json.addPlain("content", content)
    json.add("expectSize", expectedSize)
    json.add("expectMtime", expectedTime)
    json.add("expectMtimeNsec", expectedTimeNanoseconds)
    if let caller { json.addRaw("caller", caller.json) }
  }
}

struct ExtensionBatchResponse: Decodable {
  struct Result: Decodable {
    var attr: ExtensionAttr?
    var error: String?
  }
  var results: [Result]
}
