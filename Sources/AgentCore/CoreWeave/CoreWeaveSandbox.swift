import CoreWeaveProtocol
import Foundation
import GRPCCore
import SwiftProtobuf

/// The one sandbox a `--protocol coreweave` agent plays: `--sandbox-id` names it, the served
/// folder is its `/`. Paths in file calls are sandbox paths (relative ones start at `/`), cleaned
/// inside the root. Commands run on the host as in the other modes, in the root folder: an
/// absolute path in a command's argv is a host path.
final class CoreWeaveSandbox: Sendable {
  let services: AgentServices
  let id: String
  /// Largest file `ReadFile`/`WriteFile` move in one message; past it, CWSANDBOX_FILE_TOO_LARGE.
  let fileCap: Int
  let started = Date()
  let processes = ProcessTable()

  init(services: AgentServices) {
    self.services = services
    id = services.configuration.sandboxID
    fileCap = services.configuration.coreWeaveFileCap
  }

  /// Any other id is a sandbox that does not exist, as the SDK's from_id expects to learn.
  func check(_ sandboxID: String) throws(CoreWeaveError) {
    guard sandboxID == id else {
      throw CoreWeaveError(
        .notFound, .sandboxNotFound, "sandbox '\(sandboxID)' not found",
        metadata: ["sandbox_id": sandboxID])
    }
  }

  /// `GetSandbox`: running since the agent started.
  func describe() -> Coreweave_Sandbox_V1_Sandbox {
    .with {
      $0.sandboxID = id
      $0.status = .with { status in
        status.state = .running
        status.createTime = Google_Protobuf_Timestamp(date: started)
        status.startTime = Google_Protobuf_Timestamp(date: started)
        status.runnerID = "sandbox-agent"
      }
    }
  }

  /// A sandbox path cleaned inside the root; `..` cannot climb above the sandbox's `/`.
  static func resolve(_ path: String) throws(CoreWeaveError) -> ProtocolPath {
    guard !path.isEmpty else { throw CoreWeaveError(.invalidArgument, nil, "path is required") }
    do {
      return try ProtocolPath(validating: path)
    } catch {
      throw CoreWeaveError(.invalidArgument, nil, error.sandboxMessage(path))
    }
  }
}
