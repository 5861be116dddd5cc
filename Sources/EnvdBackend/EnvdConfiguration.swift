/// How to reach one envd (or `sandbox-agent`) and how patient to be with it.
public struct EnvdConfiguration: Sendable {
  /// `http://127.0.0.1:49983`; a trailing slash is ignored.
  public var baseURL: String
  /// Sent as `X-Access-Token`.
  public var accessToken: String?
  /// More headers for every request (E2B's `E2b-Sandbox-Id` and `E2b-Sandbox-Port`).
  public var extraHeaders: [String] = []
  /// PEM file of the CAs trusted for https, instead of the system's store (a private CA).
  public var caFile: String?
  /// Basic auth (empty password) for RPCs, `?username=` for `/files`. nil: the server's default.
  public var user: String?
  /// The remote folder mounted: protocol paths are `remoteRoot` + the mount path. Absolute.
  public var remoteRoot: String = "/"
  /// Seconds to establish a connection.
  public var connectTimeout: Double = 10
  /// A transfer slower than `lowSpeedLimit` bytes/s for this many seconds is aborted (EIO).
  public var lowSpeedTime: Double = 30
  public var lowSpeedLimit: Int = 1
  /// Whole-request timeout of metadata calls (Stat, ListDir, …), in seconds.
  public var requestTimeout: Double = 60
  /// Gzip uploads of files that compress well (≥ 64 KiB, sample below 90%).
  public var compressUploads: Bool = true

  public init(baseURL: String) {
    self.baseURL = baseURL
  }
}
