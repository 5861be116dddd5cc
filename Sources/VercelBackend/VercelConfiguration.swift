/// How to reach one Vercel sandbox (or `sandbox-agent --protocol vercel`) and how patient to be.
public struct VercelConfiguration: Sendable {
  /// Vercel's REST API, `https://vercel.com/api` unless self-hosted or a test's agent.
  public var apiURL: String = "https://vercel.com/api"
  /// The sandbox's name, as `vercel://NAME` gives it.
  public var sandboxName: String
  /// Sent as `Authorization: Bearer`.
  public var token: String
  /// `?teamId=` on every request; nil: the token's own scope.
  public var teamID: String?
  /// `?projectId=` of the control-plane lookup.
  public var projectID: String?
  /// The sandbox folder mounted: sandbox paths are `remoteRoot` + the mount path. Absolute.
  public var remoteRoot: String = "/"
  /// Commands run with `sudo: true` (the SDK's option): the sandbox's root does the changes.
  public var sudo = false
  /// PEM file of the CAs trusted for https instead of the system's store.
  public var caFile: String?
  public var connectTimeout: Double = 10
  /// A transfer slower than 1 byte/s for this many seconds fails (EIO).
  public var lowSpeedTime: Double = 30
  /// Whole-request deadline of control calls and of commands without their own timeout.
  public var requestTimeout: Double = 60
  /// Waits before the retries of a failed request (the SDK's: 400 ms, then 800 ms).
  public var retryDelays: [Double] = [0.4, 0.8]
  /// A 429 asking for a longer wait than this is not retried (the SDK's 20 s).
  public var longestRetryAfter: Double = 20

  public init(sandboxName: String, token: String) {
    self.sandboxName = sandboxName
    self.token = token
  }
}
