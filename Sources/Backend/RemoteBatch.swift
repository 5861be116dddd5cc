#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// One change of a batch (`RemoteFilesystem.applyBatch`).
public enum RemoteBatchChange: Sendable, Equatable {
  case makeDirectory(String, mode: UInt32)
  /// A whole small file, atomically: `content` with `mode`, and the owner and times in `changes`.
  /// `expected`: the version the file must still have (else ESTALE: someone changed it).
  case put(
    String, content: [UInt8], mode: UInt32, changes: RemoteAttributeChanges,
    expected: RemoteFileVersion? = nil)
  case setAttributes(String, RemoteAttributeChanges)
  case removeFile(String)
  case removeDirectory(String)
  case symlink(String, target: String)

  public var path: String {
    switch self {
    case .makeDirectory(let path, _), .put(let path, _, _, _, _), .setAttributes(let path, _),
      .removeFile(let path), .removeDirectory(let path), .symlink(let path, _):
      path
    }
  }
}

extension RemoteFilesystem {
  /// Applies `changes` in order in one round trip, each answered on its own: the entry's
  /// attributes afterwards (nil for a removal), or its error. EOPNOTSUPP for the whole call
  /// when the backend has no batches: the caller makes the changes one by one.
  public func applyBatch(_ changes: [RemoteBatchChange]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    throw RemoteError(errno: EOPNOTSUPP, "batches are not supported")
  }

  /// `applyBatch` with each change made as its own caller (nil: as the backend itself). This
  /// default sends each run of one caller as a batch of its own, under that caller.
  public func applyBatch(_ changes: [RemoteBatchChange], callers: [CallerIdentity?]) async throws
    -> [Result<RemoteAttributes?, RemoteError>]
  {
    try await applyInRunsOfOneCaller(changes, callers: callers) { try await applyBatch($0) }
  }
}

/// Applies `changes` in runs of consecutive changes with one caller, each run under its caller:
/// for backends that can act as only one caller per call.
public func applyInRunsOfOneCaller(
  _ changes: [RemoteBatchChange], callers: [CallerIdentity?],
  apply: ([RemoteBatchChange]) async throws -> [Result<RemoteAttributes?, RemoteError>]
) async throws -> [Result<RemoteAttributes?, RemoteError>] {
  precondition(changes.count == callers.count)
  var results: [Result<RemoteAttributes?, RemoteError>] = []
  var start = 0
  while start < changes.count {
    var end = start + 1
    while end < changes.count && callers[end] == callers[start] { end += 1 }
    let run = Array(changes[start..<end])
    results += try await CallerIdentity.$current.withValue(callers[start]) {
      try await apply(run)
    }
    start = end
  }
  return results
}
