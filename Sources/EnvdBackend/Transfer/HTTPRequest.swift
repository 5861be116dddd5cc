/// Produces a request body while curl sends it (from curl's thread).
protocol RequestBodySource: AnyObject {
  /// Total bytes, or nil when unknown (the body then goes chunked).
  var length: Int64? { get }
  /// Fills up to `capacity` bytes and returns how many; 0 at the end, nil on failure.
  func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int?
  /// Starts over, for curl's resend on a reused connection that died. false if it cannot.
  func rewind() -> Bool
  /// Why the last read failed, for the error message.
  var failure: String? { get }
}

enum RequestBody {
  case none
  case bytes([UInt8])
  case stream(any RequestBodySource)
}

/// Where a successful (2xx) response body goes. Error bodies always go to memory.
enum ResponseSink {
  /// Collects at most `limit` bytes, with room for `expected` reserved up front. More than `limit`
  /// stops the transfer and marks the response `limitReached` (not an error).
  case memory(expected: Int, limit: Int)
  /// Writes to an open file descriptor as the bytes arrive.
  case file(descriptor: Int32)
}

struct HTTPRequest {
  enum Method { case get, post }

  var method: Method
  var url: String
  var headers: [String] = []
  var body: RequestBody = .none
  /// `a-b` for a `Range: bytes=a-b` header.
  var range: String? = nil
  var sink: ResponseSink = .memory(expected: 0, limit: 64 << 20)
  /// Whole-request deadline in seconds (metadata calls); transfers rely on low-speed limits.
  var deadline: Double? = nil
  /// Big curl buffers for bulk data: fewer callbacks per MiB. Small calls keep curl's default
  /// rather than paying for a large allocation per request.
  var bulk = false
}

/// Timeouts and identity applied to every transfer.
struct TransferSettings: Sendable {
  var connectTimeout: Double
  var lowSpeedTime: Double
  var lowSpeedLimit: Int
  var userAgent: String
  /// PEM file of the CAs trusted for https instead of the system's store.
  var caFile: String? = nil
}

struct HTTPResponse: Sendable {
  /// CURLE_OK (0) when the exchange completed; else curl's error code.
  var curlCode: UInt32
  /// curl's description of a failed exchange ("Failed to connect to … : Connection refused").
  var curlMessage: String
  /// The OS errno behind a failed connect (ECONNREFUSED…), 0 if none.
  var osErrno: Int32
  var cancelled: Bool
  /// 0 when no response arrived.
  var status: Int
  /// The body for a memory sink, or the error body (capped) of a non-2xx answer.
  var body: [UInt8]
  /// Body bytes delivered to the sink (2xx only).
  var bytesReceived: UInt64
  var contentRange: String?
  var contentEncoding: String?
  /// The memory sink's limit stopped the transfer on purpose.
  var limitReached: Bool
  /// A local failure (file write, body read) that aborted the transfer.
  var localFailure: String?
  /// Connections this exchange had to open (0 when it reused a pooled one).
  var newConnections = 0

  var isSuccessStatus: Bool { (200..<300).contains(status) }
}
