import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request head does not arrive in time (slowloris): counted from the
/// connection's start, and from the first byte of each later request. The idle timeout alone
/// does not do it, since a client that sends a byte now and then is never idle.
///
/// `RequestHeadTimeoutChannel` puts `RequestHeadTimer` ahead of the HTTP decoder, where it sees
/// bytes arrive; `RequestHeadWatcher` (an HTTP-part handler, added after the decoder) tells it
/// when a head has come and when the exchange has ended.
struct RequestHeadTimeoutChannel<Inner: ServerChildChannel>: ServerChildChannel {
  let inner: Inner
  let timeout: TimeAmount

  func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
    do {
      // After a TLS handler if one is there (it sees the bytes it decrypted), before HTTP's.
      try channel.pipeline.syncOperations.addHandler(
        RequestHeadTimer(timeout: timeout, logger: logger), position: .last)
    } catch {
      return channel.eventLoop.makeFailedFuture(error)
    }
    return inner.setup(channel: channel, logger: logger)
  }

  func handle(value: Inner.Value, logger: Logger) async {
    await inner.handle(value: value, logger: logger)
  }
}

/// Times each request head; on the channel's event loop only.
final class RequestHeadTimer: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = NIOAny
  typealias OutboundIn = NIOAny

  enum Phase {
    /// Waiting for the head of a request whose first bytes (or connection) have come.
    case awaitingHead
    /// A head has come; its exchange is not over.
    case inRequest
    /// Between requests: the idle timeout's business.
    case idle
    /// The connection left HTTP (a WebSocket upgrade), or is going away.
    case off
  }

  private let timeout: TimeAmount
  private let logger: Logger
  private var timer: Scheduled<Void>?
  private(set) var phase = Phase.awaitingHead
  /// Set when a `RequestHeadWatcher` joins; a write with none means the protocol changed.
  var watcherAttached = false

  init(timeout: TimeAmount, logger: Logger) {
    self.timeout = timeout
    self.logger = logger
  }

  func handlerAdded(context: ChannelHandlerContext) {
    if context.channel.isActive { arm(context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    if timer == nil && phase == .awaitingHead { arm(context) }
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if phase == .idle {
      phase = .awaitingHead
      arm(context)
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if !watcherAttached && phase != .off { stop() }
    context.write(data, promise: promise)
  }

  func channelInactive(context: ChannelHandlerContext) {
    stop()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) { stop() }

  /// From `RequestHeadWatcher`.
  func headArrived() {
    guard phase != .off else { return }
    timer?.cancel()
    timer = nil
    phase = .inRequest
  }

  func exchangeEnded() {
    guard phase == .inRequest else { return }
    phase = .idle
  }

  func stop() {
    timer?.cancel()
    timer = nil
    phase = .off
  }

  private func arm(_ context: ChannelHandlerContext) {
    timer?.cancel()
    let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleTask(in: timeout) {
      let (handler, context) = loopBound.value
      guard handler.phase == .awaitingHead else { return }
      handler.logger.debug(
        "closing a connection whose request head did not come within \(handler.timeout)")
      handler.stop()
      context.close(promise: nil)
    }
  }
}

/// Reports request heads and ends to the connection's `RequestHeadTimer`.
final class RequestHeadWatcher: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPRequestPart
  typealias InboundOut = HTTPRequestPart
  typealias OutboundIn = HTTPResponsePart
  typealias OutboundOut = HTTPResponsePart

  private var timer: RequestHeadTimer?
  private var requestEnded = false
  private var responseEnded = false
  /// Added once the first head was decoded (HTTP handlers after a declined WebSocket upgrade).
  private let addedAfterHead: Bool

  init(addedAfterHead: Bool = false) {
    self.addedAfterHead = addedAfterHead
  }

  func handlerAdded(context: ChannelHandlerContext) {
    timer = try? context.pipeline.syncOperations.handler(type: RequestHeadTimer.self)
    timer?.watcherAttached = true
    if addedAfterHead { timer?.headArrived() }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    timer?.stop()
    timer = nil
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head:
      requestEnded = false
      responseEnded = false
      timer?.headArrived()
    case .body: break
    case .end:
      requestEnded = true
      if responseEnded { timer?.exchangeEnded() }
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if case .end = unwrapOutboundIn(data) {
      responseEnded = true
      if requestEnded { timer?.exchangeEnded() }
    }
    context.write(data, promise: promise)
  }
}
