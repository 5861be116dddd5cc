import Foundation
import ServiceLifecycle

/// The one box a `--protocol langsmith` agent plays: the served folder is the box's `/`, and any
/// box name looked up on the control plane is this box, with this agent as its dataplane.
///
/// Relative paths resolve from `/home/user` (as the SDK documents); commands start there when it
/// exists, else in `/`. Commands run on the host as in envd mode, not in a chroot: their working
/// directory is inside the root and `SANDBOX_ROOT` names it, but an absolute path in a command
/// line is a host path.
final class LangSmithSandbox: Sendable {
  static let home = "/home/user"

  let services: AgentServices
  let commands = LangSmithCommandTable()
  let id = UUID().uuidString.lowercased()

  init(services: AgentServices) {
    self.services = services
  }

  /// `GET …/boxes/{name}`: the box, ready, with `dataplane_url` pointing back at this agent
  /// (as the client reached it).
  func box(name: String, host: String?) -> [String: Any] {
    let scheme = services.configuration.tls == nil ? "http://" : "https://"
    let dataplane =
      scheme + (host ?? "\(services.configuration.host):\(services.configuration.port)")
    return [
      "name": name, "id": id, "status": "ready", "dataplane_url": dataplane,
      "created_at": Self.rfc3339(Date()), "updated_at": Self.rfc3339(Date()),
    ]
  }

  /// `path` as the box names it (absolute, or relative to `/home/user`), cleaned inside the
  /// root; `..` cannot climb above the box's `/`.
  static func resolve(_ path: String) throws(LangSmithError) -> ProtocolPath {
    guard !path.isEmpty else { throw .badRequest("path must not be empty") }
    let joined = path.hasPrefix("/") ? path : home + "/" + path
    do {
      return try ProtocolPath(validating: joined)
    } catch {
      throw LangSmithError(400, "InvalidPath", error.sandboxMessage(path))
    }
  }

  /// The working directory of a command with no `cwd`.
  var defaultDirectory: String {
    let home = ProtocolPath(absolute: Self.home)!
    return (try? services.jail.stat(home))?.isDirectory == true ? Self.home : "/"
  }

  static func rfc3339(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: date)
  }
}

/// Stopping the agent stops the box: its running commands are killed, not left orphaned.
struct LangSmithShutdown: Service {
  let sandbox: LangSmithSandbox

  func run() async throws {
    try? await gracefulShutdown()
    sandbox.commands.killAll()
  }
}
