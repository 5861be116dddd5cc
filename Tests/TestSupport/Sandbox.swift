import Foundation

/// A work folder holding `root` (what the agent serves) and `mnt`; `start` runs a real agent on
/// `root` and a real `sandbox-mount -f` of it on `mnt`. `close()` unmounts, stops and removes
/// everything, whatever the test did.
public final class MountedSandbox: @unchecked Sendable {
  public let workDirectory: TemporaryDirectory
  public private(set) var agent: RunningAgent?
  /// Settable, so a test can remount (set it to nil first: a mount's deinit unmounts).
  public var mount: RunningMount?

  public var root: String { workDirectory.path + "/root" }
  public var mountpoint: String { workDirectory.path + "/mnt" }

  /// Makes the work folder with `root`, `mnt` and the extra `folders`; starts nothing, so
  /// arguments can name paths inside it before `start`.
  public init(prefix: String, folders: [String] = []) throws {
    workDirectory = try TemporaryDirectory(prefix: prefix)
    do {
      for folder in ["root", "mnt"] + folders {
        try FileManager.default.createDirectory(
          atPath: workDirectory.path + "/" + folder, withIntermediateDirectories: true)
      }
    } catch {
      workDirectory.remove()
      throw error
    }
  }

  /// Starts the agent on `root`, then mounts it on `mnt`: the agent's URL, or what `mountTarget`
  /// makes of it (`vercel://NAME --api-url …`). On failure, `close()` still cleans up.
  public func start(
    agentArguments: [String] = [], agentEnvironment: [String: String]? = nil,
    mountArguments: [String] = [],
    mountTarget: (_ agentURL: String) throws -> (url: String, arguments: [String]) = { ($0, []) }
  ) throws {
    let agent = try RunningAgent(
      root: root, arguments: agentArguments, environment: agentEnvironment)
    self.agent = agent
    let target = try mountTarget(agent.url)
    mount = try RunningMount(
      url: target.url, mountpoint: mountpoint, arguments: target.arguments + mountArguments)
  }

  /// Starts a new agent on the old one's address (stop or kill the old one first), so the mount
  /// finds it again.
  public func restartAgent(arguments: [String] = [], environment: [String: String]? = nil) throws {
    guard let old = agent else { throw TestSupportError("no agent to restart") }
    old.stop()
    let address = old.url.replacingOccurrences(of: "http://", with: "")
    agent = try RunningAgent(
      root: root, arguments: arguments, environment: environment, listen: address)
  }

  public func close() {
    mount?.unmount()
    mount = nil
    agent?.stop()
    agent = nil
    workDirectory.remove()
  }
}
