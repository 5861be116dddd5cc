import CCurl

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// One HTTP exchange: a configured curl easy handle plus the state its callbacks fill in.
///
/// Created on the caller's task, then owned by the multi loop's thread until it completes; the
/// continuation's resume hands the results back (happens-before), hence `@unchecked Sendable`.
public final class CurlTransfer: @unchecked Sendable {
  let easy: UnsafeMutableRawPointer
  private var headerList: UnsafeMutablePointer<curl_slist>?
  private let errorBuffer: UnsafeMutablePointer<CChar>
  private let sink: ResponseSink
  private let source: (any RequestBodySource)?

  private var status = 0
  private var body: [UInt8] = []
  private var bytesReceived: UInt64 = 0
  private var contentRange: String?
  private var contentEncoding: String?
  private var retryAfter: String?
  private var limitReached = false
  private var localFailure: String?
  private var localErrno: Int32 = 0
  /// Microseconds without a byte moving (either way) after which the transfer stops, as
  /// timed out; nil for long-lived streams, which keep only curl's low-speed check.
  private let stallLimit: curl_off_t?
  private var bytesMoved: curl_off_t = 0
  private var lastMoved: curl_off_t = 0
  private var stalled = false

  /// Set by the loop under its lock; read there too.
  var cancelRequested = false
  var continuation: CheckedContinuation<HTTPResponse, Never>?

  private static let errorBodyLimit = 64 << 10
  private static let receiveBufferSize = 512 << 10
  private static let uploadBufferSize = 512 << 10

  public init(_ request: HTTPRequest, settings: TransferSettings) throws {
    guard let easy = curl_easy_init() else { throw CurlSetupError("curl_easy_init failed") }
    self.easy = easy
    errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    sink = request.sink
    if case .stream(let source) = request.body { self.source = source } else { source = nil }
    if case .memory(let expected, _) = request.sink { body.reserveCapacity(expected) }
    if case .chunks = request.sink {
      stallLimit = nil
    } else {
      stallLimit = curl_off_t(max(1, settings.lowSpeedTime) * 1_000_000)
    }
    try configure(request, settings: settings)
  }

  deinit {
    curl_easy_cleanup(easy)
    curl_slist_free_all(headerList)
    errorBuffer.deallocate()
  }

  private func configure(_ request: HTTPRequest, settings: TransferSettings) throws {
    let context = Unmanaged.passUnretained(self).toOpaque()
    try set(CURLOPT_URL, request.url)
    try set(CURLOPT_NOSIGNAL, 1)
    try set(CURLOPT_USERAGENT, settings.userAgent)
    try set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
    try set(CURLOPT_TCP_KEEPALIVE, 1)
    try set(CURLOPT_CONNECTTIMEOUT_MS, Int(settings.connectTimeout * 1000))
    try set(CURLOPT_LOW_SPEED_LIMIT, settings.lowSpeedLimit)
    try set(CURLOPT_LOW_SPEED_TIME, max(1, Int(settings.lowSpeedTime.rounded(.up))))
    if let deadline = request.deadline { try set(CURLOPT_TIMEOUT_MS, Int(deadline * 1000)) }
    if request.bulk { try set(CURLOPT_BUFFERSIZE, Self.receiveBufferSize) }
    if stallLimit != nil {
      // curl's low-speed check averages over a ~5 s window: a transfer that moved bytes and then
      // stopped took --io-timeout plus up to 6 s to fail. This one counts from the last byte.
      try set(CURLOPT_NOPROGRESS, 0)
      try check(
        sandbox_curl_setopt_xferinfo_function(easy) { context, _, received, _, sent in
          guard let context else { return 0 }
          let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
          return transfer.checkProgress(moved: received + sent)
        }, "XFERINFOFUNCTION")
      try check(sandbox_curl_setopt_pointer(easy, CURLOPT_XFERINFODATA, context), "XFERINFODATA")
    }
    // On https, wait for the first connection to tell whether it multiplexes (HTTP/2) rather
    // than opening one connection per concurrent request.
    if request.url.hasPrefix("https:") { try set(CURLOPT_PIPEWAIT, 1) }
    if let caFile = settings.caFile { try set(CURLOPT_CAINFO, caFile) }
    try check(sandbox_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer), "ERRORBUFFER")

    try check(
      sandbox_curl_setopt_write_function(easy, CURLOPT_WRITEFUNCTION) {
        data, size, count, context in
        guard let context else { return 0 }
        let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
        return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
      }, "WRITEFUNCTION")
    try check(sandbox_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, context), "WRITEDATA")
    try check(
      sandbox_curl_setopt_write_function(easy, CURLOPT_HEADERFUNCTION) {
        data, size, count, context in
        guard let context else { return 0 }
        let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
        transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: size * count))
        return size * count
      }, "HEADERFUNCTION")
    try check(sandbox_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, context), "HEADERDATA")

    var headers = request.headers
    switch request.method {
    case .get:
      try set(CURLOPT_HTTPGET, 1)
      if let range = request.range { try set(CURLOPT_RANGE, range) }
    case .post:
      try set(CURLOPT_POST, 1)
      // curl waits up to a second for "100 Continue" on big or chunked bodies; skip that.
      headers.append("Expect:")
      try configureBody(request.body, context: context)
    }
    for header in headers { headerList = curl_slist_append(headerList, header) }
    try check(sandbox_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList), "HTTPHEADER")
  }

  private func configureBody(_ body: RequestBody, context: UnsafeMutableRawPointer) throws {
    switch body {
    case .none:
      try check(sandbox_curl_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0), "POSTFIELDSIZE")
      try set(CURLOPT_COPYPOSTFIELDS, "")
    case .bytes(let bytes):
      try check(
        sandbox_curl_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)),
        "POSTFIELDSIZE")
      try bytes.withUnsafeBytes { raw in
        // COPYPOSTFIELDS copies exactly POSTFIELDSIZE bytes, so no terminator is needed.
        let pointer = UnsafeMutableRawPointer(
          mutating: raw.baseAddress ?? UnsafeRawPointer(errorBuffer))
        try check(
          sandbox_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, pointer), "COPYPOSTFIELDS")
      }
    case .stream(let source):
      try check(
        sandbox_curl_setopt_offset(
          easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(source.length ?? -1)),
        "POSTFIELDSIZE")
      try set(CURLOPT_UPLOAD_BUFFERSIZE, Self.uploadBufferSize)  // max 2 MiB
      try check(
        sandbox_curl_setopt_read_function(easy) { buffer, size, count, context in
          guard let buffer, let context else { return Int(CURL_READFUNC_ABORT) }
          let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
          return transfer.send(into: buffer, capacity: size * count)
        }, "READFUNCTION")
      try check(sandbox_curl_setopt_pointer(easy, CURLOPT_READDATA, context), "READDATA")
      try check(
        sandbox_curl_setopt_seek_function(easy) { context, offset, origin in
          guard let context, offset == 0, origin == SEEK_SET else { return CURL_SEEKFUNC_CANTSEEK }
          let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
          return transfer.source?.rewind() == true ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK
        }, "SEEKFUNCTION")
      try check(sandbox_curl_setopt_pointer(easy, CURLOPT_SEEKDATA, context), "SEEKDATA")
    }
  }

  // MARK: callbacks (curl's thread)

  private func receive(_ data: UnsafeRawBufferPointer) -> Int {
    if status == 0 {
      var code = 0
      _ = sandbox_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
      status = code
    }
    guard (200..<300).contains(status) else {
      // An error body (the server's or a proxy's) is kept, capped, whatever the sink.
      let room = Self.errorBodyLimit - body.count
      if room > 0 { append(UnsafeRawBufferPointer(rebasing: data.prefix(room))) }
      return data.count
    }
    switch sink {
    case .memory(_, let limit):
      let room = limit - body.count
      if data.count > room {
        append(UnsafeRawBufferPointer(rebasing: data.prefix(room)))
        bytesReceived += UInt64(room)
        limitReached = true
        return 0  // stops the transfer with CURLE_WRITE_ERROR, which `limitReached` excuses
      }
      append(data)
    case .file(let descriptor):
      var done = 0
      while done < data.count {
        let written = write(descriptor, data.baseAddress! + done, data.count - done)
        if written < 0 {
          if errno == EINTR { continue }
          localErrno = errno
          localFailure = "writing the local file: \(String(cString: strerror(localErrno)))"
          return 0
        }
        done += written
      }
    case .chunks(let receiver):
      guard receiver.receive(data) else {
        localFailure = "the stream's receiver stopped it"
        return 0
      }
    }
    bytesReceived += UInt64(data.count)
    return data.count
  }

  private func append(_ data: UnsafeRawBufferPointer) {
    guard let base = data.baseAddress, data.count > 0 else { return }
    body.append(
      contentsOf: UnsafeBufferPointer(
        start: base.assumingMemoryBound(to: UInt8.self), count: data.count))
  }

  private func receiveHeader(_ line: UnsafeRawBufferPointer) {
    // A new status line starts a new header block (after 100 Continue or a redirect).
    if line.starts(with: "HTTP/".utf8) {
      contentRange = nil
      contentEncoding = nil
      retryAfter = nil
      return
    }
    guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return }
    let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<colon]), as: UTF8.self)
      .lowercased()
    guard name == "content-range" || name == "content-encoding" || name == "retry-after" else {
      return
    }
    let value = String(
      decoding: UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]), as: UTF8.self
    )
    .trimmingASCIIWhitespace()
    switch name {
    case "content-range": contentRange = value
    case "retry-after": retryAfter = value
    default: contentEncoding = value
    }
  }

  /// Non-zero stops the transfer: no byte moved for `stallLimit` since the request went out.
  private func checkProgress(moved: curl_off_t) -> Int32 {
    guard let stallLimit else { return 0 }
    var now: curl_off_t = 0
    var requestSent: curl_off_t = 0
    _ = sandbox_curl_getinfo_offset(easy, CURLINFO_TOTAL_TIME_T, &now)
    _ = sandbox_curl_getinfo_offset(easy, CURLINFO_PRETRANSFER_TIME_T, &requestSent)
    // Connecting has its own timeout.
    if requestSent == 0 || moved != bytesMoved {
      bytesMoved = moved
      lastMoved = now
      return 0
    }
    guard now - lastMoved >= stallLimit else { return 0 }
    stalled = true
    return 1
  }

  private func send(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
    guard let source else { return 0 }
    guard let count = source.read(into: UnsafeMutableRawPointer(buffer), capacity: capacity) else {
      localFailure = source.failure ?? "reading the local file failed"
      return Int(CURL_READFUNC_ABORT)
    }
    return count
  }

  // MARK: completion (curl's thread)

  func response(curlCode: CURLcode, cancelled: Bool) -> HTTPResponse {
    if stalled && curlCode == CURLE_ABORTED_BY_CALLBACK && !cancelled {
      let seconds = (stallLimit ?? 0) / 1_000_000
      return response(
        curlCode: CURLE_OPERATION_TIMEDOUT, message: "no byte moved for \(seconds) s",
        cancelled: false)
    }
    return response(curlCode: curlCode, message: nil, cancelled: cancelled)
  }

  private func response(curlCode: CURLcode, message stated: String?, cancelled: Bool)
    -> HTTPResponse
  {
    if status == 0 {
      var code = 0
      _ = sandbox_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
      status = code
    }
    var message = ""
    var osErrno = 0
    if curlCode != CURLE_OK {
      _ = sandbox_curl_getinfo_long(easy, CURLINFO_OS_ERRNO, &osErrno)
      message = stated ?? String(cString: errorBuffer)
      if message.isEmpty { message = String(cString: curl_easy_strerror(curlCode)) }
    }
    var connects = 0
    _ = sandbox_curl_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
    return HTTPResponse(
      curlCode: curlCode.rawValue, curlMessage: message,
      osErrno: Int32(truncatingIfNeeded: osErrno), cancelled: cancelled, status: status,
      body: body, bytesReceived: bytesReceived, contentRange: contentRange,
      contentEncoding: contentEncoding, limitReached: limitReached, localFailure: localFailure,
      newConnections: connects, localErrno: localErrno, retryAfter: retryAfter)
  }

  // MARK: setopt helpers

  private func set(_ option: CURLoption, _ value: Int) throws {
    try check(sandbox_curl_setopt_long(easy, option, value), "option \(option.rawValue)")
  }

  private func set(_ option: CURLoption, _ value: String) throws {
    try check(sandbox_curl_setopt_string(easy, option, value), "option \(option.rawValue)")
  }

  private func check(_ code: CURLcode, _ what: String) throws {
    guard code == CURLE_OK else {
      throw CurlSetupError("curl rejected \(what): \(String(cString: curl_easy_strerror(code)))")
    }
  }
}

struct CurlSetupError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

extension String {
  public func trimmingASCIIWhitespace() -> String {
    let bytes = Array(utf8)
    var start = 0
    var end = bytes.count
    func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 13 || byte == 10 }
    while start < end, isSpace(bytes[start]) { start += 1 }
    while end > start, isSpace(bytes[end - 1]) { end -= 1 }
    return String(decoding: bytes[start..<end], as: UTF8.self)
  }
}
