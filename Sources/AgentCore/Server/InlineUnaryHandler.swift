import Glibc
import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import NIOPosix
import Synchronization

/// A unary call answered synchronously: status and JSON body.
struct UnaryAnswer: Sendable {
  var status: HTTPResponse.Status
  var body: ByteBuffer
}

/// A unary call after its request is decoded: answered, or work that may block (a folder
/// listing, a truncate, an fsync) for the thread pool, not the event loop.
enum UnaryWork: Sendable {
  case answered(UnaryAnswer)
  case offloaded(@Sendable () -> UnaryAnswer)
}

/// A request `InlineUnaryHandler` took, its body whole.
struct InlineRequest: Sendable {
  var query: String?
  var authorization: String?
  var contentEncoding: String?
  /// `Sandbox-Agent-Caller`, read by the offset-write route.
  var caller: String? = nil
  var body: ByteBuffer
}

/// The calls `InlineUnaryHandler` may answer, by request path. Filled while the router is built,
/// read once per connection.
final class InlineUnaryRoutes: Sendable {
  typealias Answer = @Sendable (InlineRequest) -> UnaryWork
  struct Route: Sendable {
    /// A Connect call: `application/json`, no query, no Content-Encoding. Else the route reads
    /// the query and the encoding itself and takes any body.
    var connect: Bool
    var answer: Answer
  }
  private let routes = Mutex<[String: Route]>([:])

  func add(_ path: String, connect: Bool = true, _ answer: @escaping Answer) {
    routes.withLock { $0[path] = Route(connect: connect, answer: answer) }
  }

  var snapshot: [String: Route] { routes.withLock { $0 } }
}

/// Answers Connect unary calls (a stat, an unlink, a listing) from the HTTP parts, before they
/// reach Hummingbird's async request path. That path (async channel, router, middleware, task
/// switches) costs more CPU on a 2-core box than a light call itself, and every file system call
/// of a mount pays it. Light calls run right on the event loop; others on the thread pool.
///
/// Anything out of the ordinary (a query string, another media type, a compressed or chunked
/// body, a bad token, `Expect` or `Connection` headers, a request while one is with the router)
/// goes on to the router, which answers it exactly as before.
final class InlineUnaryHandler: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPRequestPart
  typealias InboundOut = HTTPRequestPart
  typealias OutboundIn = HTTPResponsePart
  typealias OutboundOut = HTTPResponsePart

  /// Bodies of Connect calls are a path or two, and a small file's upload fits; larger ones
  /// take the router's path, which streams them.
  static let maxInlineBody = 64 << 10

  private let routes: [String: InlineUnaryRoutes.Route]
  private let counters: AgentCounters
  private let token: AccessToken?
  private let logger: Logger
  /// Requests handed to the router whose response has not ended: answering another one first
  /// would reorder the responses of a pipelining client.
  private var routedInFlight = 0
  private var call: Call?
  /// Parts that came while an offloaded answer was being made, read again once it is written,
  /// so that a pipelining client gets its answers in order.
  private var heldBack: [HTTPRequestPart]?
  private var date = (second: 0, text: "")

  private struct Call {
    var route: InlineUnaryRoutes.Route
    var path: String
    var request: InlineRequest
    var start: ContinuousClock.Instant
  }

  init(
    routes: [String: InlineUnaryRoutes.Route], counters: AgentCounters, token: AccessToken?,
    logger: Logger
  ) {
    self.routes = routes
    self.counters = counters
    self.token = token
    self.logger = logger
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let part = unwrapInboundIn(data)
    if heldBack != nil {
      heldBack!.append(part)
      return
    }
    read(part, context: context)
  }

  private func read(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
    switch part {
    case .head(let head):
      if routedInFlight == 0, let route = inlineRoute(for: head) {
        let fields = head.headerFields
        counters.countRequest()
        let length = fields[.contentLength].flatMap { Int($0) } ?? 0
        counters.countReceived(length)
        let target = head.path ?? ""
        let query = target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) }
        let request = InlineRequest(
          query: query, authorization: fields[.authorization],
          contentEncoding: fields[.contentEncoding], caller: fields[callerHeader],
          body: context.channel.allocator.buffer(capacity: length))
        call = Call(
          route: route, path: String(target.prefix { $0 != "?" }), request: request, start: .now)
        return
      }
      routedInFlight += 1
    case .body(let bytes):
      if call != nil {
        call!.request.body.writeImmutableBuffer(bytes)
        return
      }
    case .end:
      if let current = call {
        call = nil
        answer(current, context: context)
        return
      }
    }
    context.fireChannelRead(wrapInboundOut(part))
  }

  private func answer(_ call: Call, context: ChannelHandlerContext) {
    let work: @Sendable () -> UnaryAnswer
    switch call.route.answer(call.request) {
    case .answered(let answer):
      respond(answer, to: call, context: context)
      return
    case .offloaded(let offloaded): work = offloaded
    }
    heldBack = []
    NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop, work)
      .assumeIsolated().whenComplete { result in
        switch result {
        case .success(let answer): self.respond(answer, to: call, context: context)
        case .failure:
          let error = ConnectError(.unavailable, "the agent is shutting down")
          self.respond(
            UnaryAnswer(
              status: .init(code: error.code.httpStatus),
              body: ByteBuffer(bytes: error.protocolJSON)),
            to: call, context: context)
        }
        // Parts held back are read in order; an offload one of them starts holds back the rest.
        let parts = self.heldBack ?? []
        self.heldBack = nil
        for part in parts {
          if self.heldBack != nil {
            self.heldBack!.append(part)
          } else {
            self.read(part, context: context)
          }
        }
        // The async channel hands reads on at a read's completion, which came while they waited.
        if !parts.isEmpty { context.fireChannelReadComplete() }
      }
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if case .end = unwrapOutboundIn(data) { routedInFlight = max(0, routedInFlight - 1) }
    context.write(data, promise: promise)
  }

  private func inlineRoute(for head: HTTPRequest) -> InlineUnaryRoutes.Route? {
    guard head.method == .post, let target = head.path,
      let route = routes[String(target.prefix { $0 != "?" })]
    else { return nil }
    let fields = head.headerFields
    guard let length = fields[.contentLength].flatMap({ Int($0) }), length <= Self.maxInlineBody,
      fields[.transferEncoding] == nil, fields[.expect] == nil, fields[.connection] == nil
    else { return nil }
    if route.connect {
      guard fields[.contentType] == "application/json", fields[.contentEncoding] == nil,
        !target.contains("?")
      else { return nil }
    }
    if let token, !token.matches(fields[accessTokenHeader]) { return nil }
    return route
  }

  private func respond(_ answer: UnaryAnswer, to call: Call, context: ChannelHandlerContext) {
    // The router's request log line (`RequestLogMiddleware`): tests count requests by it.
    logger.debug("POST \(call.path) \(answer.status.code) \(ContinuousClock.now - call.start)")
    var fields = HTTPFields()
    fields[.contentType] = "application/json"
    fields[.contentLength] = String(answer.body.readableBytes)
    fields[.date] = currentDate()
    context.write(
      wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: fields))),
      promise: nil)
    context.write(wrapOutboundOut(.body(answer.body)), promise: nil)
    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
  }

  private func currentDate() -> String {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    let second = Int(spec.tv_sec)
    if second != date.second { date = (second, HTTPDate.format(second)) }
    return date.text
  }
}
