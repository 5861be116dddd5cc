/// Produces a request body while curl sends it (from curl's thread).
public protocol RequestBodySource: AnyObject {
  /// Total bytes, or nil when unknown (the body then goes chunked).
  var length: Int64? { get }
  /// Fills up to `capacity` bytes and returns how many; 0 at the end, nil on failure.
  func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int?
  /// Starts over, for curl's resend on a reused connection that died. false if it cannot.
  func rewind() -> Bool
  /// Why the last read failed, for the error message.
  var failure: String? { get }
}

public enum RequestBody {
  case none
  case bytes([UInt8])
  case stream(any RequestBodySource)
}

/// Where a successful (2xx) response body goes. Error bodies always go to memory.
public enum ResponseSink {
  /// Collects at most `limit` bytes, with room for `expected` reserved up front. More than `limit`
  /// stops the transfer and marks the response `limitReached` (not an error).
  case memory(expected: Int, limit: Int)
  /// Writes to an open file descriptor as the bytes arrive.
  case file(descriptor: Int32)
  /// Hands each chunk to `receiver` as it arrives (long-lived streams such as a watch).
  case chunks(any ResponseChunkReceiver)
}

/// Takes a response body chunk by chunk, on curl's thread: keep it short.
public protocol ResponseChunkReceiver: AnyObject, Sendable {
  /// false stops the transfer (a local failure).
  func receive(_ bytes: UnsafeRawBufferPointer) -> Bool
}

public struct HTTPRequest {
  public enum Method { case get, post }

  public var method: Method
  public var url: String
  public var headers: [String]
  public var body: RequestBody
  /// `a-b` for a `Range: bytes=a-b` header.
  public var range: String?
  public var sink: ResponseSink
  /// Whole-request deadline in seconds (metadata calls); transfers rely on low-speed limits.
  public var deadline: Double?
  /// Big curl buffers for bulk data: fewer callbacks per MiB. Small calls keep curl's default
  /// rather than paying for a large allocation per request.
  public var bulk: Bool

  public init(
    method: Method, url: String, headers: [String] = [], body: RequestBody = .none,
    range: String? = nil, sink: ResponseSink = .memory(expected: 0, limit: 64 << 20),
    deadline: Double? = nil, bulk: Bool = false
  ) {
    self.method = method
    self.url = url
    self.headers = headers
    self.body = body
    self.range = range
    self.sink = sink
    self.deadline = deadline
    self.bulk = bulk
  }
}

/// Timeouts and identity applied to every transfer.
public struct TransferSettings: Sendable {
  public var connectTimeout: Double
  public var lowSpeedTime: Double
  public var lowSpeedLimit: Int
  public var userAgent: String
  /// PEM file of the CAs trusted for https instead of the system's store.
  public var caFile: String?

  public init(
    connectTimeout: Double, lowSpeedTime: Double, lowSpeedLimit: Int, userAgent: String,
    caFile: String? = nil
  ) {
    self.connectTimeout = connectTimeout
    self.lowSpeedTime = lowSpeedTime
    self.lowSpeedLimit = lowSpeedLimit
    self.userAgent = userAgent
    self.caFile = caFile
  }
}

public struct HTTPResponse: Sendable {
  /// CURLE_OK (0) when the exchange completed; else curl's error code.
  public var curlCode: UInt32
  /// curl's description of a failed exchange ("Failed to connect to … : Connection refused").
  public var curlMessage: String
  /// The OS errno behind a failed connect (ECONNREFUSED…), 0 if none.
  public var osErrno: Int32
  public var cancelled: Bool
  /// 0 when no response arrived.
  public var status: Int
  /// The body for a memory sink, or the error body (capped) of a non-2xx answer.
  public var body: [UInt8]
  /// Body bytes delivered to the sink (2xx only).
  public var bytesReceived: UInt64
  public var contentRange: String?
  public var contentEncoding: String?
  /// The memory sink's limit stopped the transfer on purpose.
  public var limitReached: Bool
  /// A local failure (file write, body read) that aborted the transfer.
  public var localFailure: String?
  /// Connections this exchange had to open (0 when it reused a pooled one).
  public var newConnections = 0
  /// The errno of a local file write that aborted the transfer (ENOSPC when the local disk is
  /// full), 0 if none or unknown: the kernel should see it, not a remote EIO.
  public var localErrno: Int32 = 0
  /// The `Retry-After` header of a 429 or 503, as sent (seconds or an HTTP date).
  public var retryAfter: String? = nil

  public var isSuccessStatus: Bool { (200..<300).contains(status) }
}
