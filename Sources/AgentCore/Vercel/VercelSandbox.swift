import Foundation
import Synchronization

/// The one sandbox a `--protocol vercel` agent plays. The served folder stands for the sandbox's
/// `/`: `/vercel/sandbox` (Vercel's default working directory) is `<root>/vercel/sandbox`, made
/// at start. Any sandbox name is this sandbox; it has one session at a time, whose id the
/// control-plane lookup hands out. Stopping the session (`POST …/stop`) kills its commands and
/// makes every session route answer 410 `sandbox_stopped` until a lookup with `resume=true`
/// starts a new session over the same folder.
///
/// Commands run on the host as in envd mode, not in a chroot: their working directory is inside
/// the root and `SANDBOX_ROOT` names it, but an absolute path in their arguments is a host path.
/// The SDK's helpers (exists, listdir, remove, rename) pass the caller's path as given, so they
/// see the sandbox's files for relative paths (resolved in `/vercel/sandbox`) or with `--root /`.
final class VercelSandbox: Sendable {
  static let defaultCwd = "/vercel/sandbox"
  static let projectID = "prj_sandbox_agent"

  let services: AgentServices
  let commands = VercelCommandTable()
  private let createdAt = VercelSandbox.nowMilliseconds()

  private struct State {
    var name = "sandbox"
    var sessionID = VercelSandbox.newSessionID()
    var sessionStartedAt = VercelSandbox.nowMilliseconds()
    var stopped = false
    var statusUpdatedAt = VercelSandbox.nowMilliseconds()
    var stoppedSessions: Set<String> = []
  }
  private let state = Mutex(State())

  init(services: AgentServices) throws(SystemError) {
    self.services = services
    let cwd = ProtocolPath(absolute: Self.defaultCwd)!
    do {
      try services.jail.ensureDirectories(cwd, owner: services.users.defaultUser)
    } catch {
      throw SystemError("mkdir", Self.defaultCwd, code: EIO)
    }
  }

  static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

  static func newSessionID() -> String {
    "sbx_" + (0..<12).map { _ in String(Int.random(in: 0..<36), radix: 36) }.joined()
  }

  /// The live session's id; 410 for a stopped one, 404 for an id this agent never gave out.
  func checkSession(_ id: String, allowStopped: Bool = false) throws(VercelError) {
    let current = state.withLock { ($0.sessionID, $0.stopped, $0.stoppedSessions.contains(id)) }
    if id == current.0 && (!current.1 || allowStopped) { return }
    if id == current.0 || current.2 { throw .stopped }
    throw VercelError(404, "sandbox_not_found", "no session '\(id)' in this sandbox")
  }

  /// `GET /v2/sandboxes/{name}`: `resume=true` starts a new session when the last one stopped.
  func lookup(name: String, resume: Bool) -> [String: Any] {
    state.withLock {
      $0.name = name
      if $0.stopped && resume {
        $0.stoppedSessions.insert($0.sessionID)
        $0.sessionID = Self.newSessionID()
        $0.sessionStartedAt = Self.nowMilliseconds()
        $0.stopped = false
        $0.statusUpdatedAt = $0.sessionStartedAt
      }
    }
    return ["sandbox": sandboxJSON(), "session": sessionJSON(), "routes": [Any]()]
  }

  /// `POST …/stop`: kills every command and stops the session.
  func stop() -> [String: Any] {
    state.withLock {
      $0.stopped = true
      $0.statusUpdatedAt = Self.nowMilliseconds()
    }
    commands.killAll()
    return ["session": sessionJSON(), "sandbox": sandboxJSON()]
  }

  func sessionResponse() -> [String: Any] {
    ["session": sessionJSON(), "sandbox": sandboxJSON(), "routes": [Any]()]
  }

  var sessionID: String { state.withLock { $0.sessionID } }

  private func sandboxJSON() -> [String: Any] {
    let current = state.withLock { $0 }
    return [
      "name": current.name, "currentSessionId": current.sessionID,
      "status": current.stopped ? "stopped" : "running", "persistent": true,
      "projectId": Self.projectID, "cwd": Self.defaultCwd, "region": "local",
      "memory": 2048, "vcpus": 1, "createdAt": createdAt, "updatedAt": current.statusUpdatedAt,
      "statusUpdatedAt": current.statusUpdatedAt, "tags": [String: String](),
    ]
  }

  private func sessionJSON() -> [String: Any] {
    let current = state.withLock { $0 }
    var session: [String: Any] = [
      "id": current.sessionID, "sourceSandboxName": current.name, "projectId": Self.projectID,
      "status": current.stopped ? "stopped" : "running", "cwd": Self.defaultCwd,
      "region": "local", "memory": 2048, "vcpus": 1, "requestedAt": current.sessionStartedAt,
      "startedAt": current.sessionStartedAt,
    ]
    if current.stopped { session["stoppedAt"] = current.statusUpdatedAt }
    return session
  }

  // MARK: Paths

  /// `path` as the sandbox names it (absolute, or relative to `cwd`, itself relative to
  /// `/vercel/sandbox`), cleaned inside the root; `..` cannot climb above the sandbox's `/`.
  static func resolve(_ path: String, cwd: String?) throws(VercelError) -> ProtocolPath {
    guard !path.isEmpty else { throw .badRequest("path must not be empty") }
    let joined: String
    if path.hasPrefix("/") {
      joined = path
    } else {
      joined = resolveDirectory(cwd) + "/" + path
    }
    do {
      return try ProtocolPath(validating: joined)
    } catch {
      throw VercelError(400, "invalid_path", error.sandboxMessage(path))
    }
  }

  /// A working directory: absolute, or relative to `/vercel/sandbox`; empty means that.
  static func resolveDirectory(_ cwd: String?) -> String {
    guard let cwd, !cwd.isEmpty else { return defaultCwd }
    return cwd.hasPrefix("/") ? cwd : defaultCwd + "/" + cwd
  }
}
