import NIOCore

/// Tells a streaming call that its client has gone away. Hummingbird allows half-closed
/// connections, so a client's FIN only ends the inbound side; the channel stays open, and a quiet
/// stream (a watch with no events) would not notice until its next keepalive. Go's net/http
/// cancels the request's context on that EOF; `inputClosed` is the same signal.
final class InputClosedHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = NIOAny

  private var promise: EventLoopPromise<Void>?

  /// Succeeds when the inbound side closes or the channel goes away.
  var inputClosed: EventLoopFuture<Void> { promise!.futureResult }

  func handlerAdded(context: ChannelHandlerContext) {
    promise = context.eventLoop.makePromise()
  }

  // NIO reports a promise dropped unfulfilled; a removed handler's stream is over anyway.
  func handlerRemoved(context: ChannelHandlerContext) {
    promise?.succeed()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent { promise?.succeed() }
    context.fireUserInboundEventTriggered(event)
  }

  func channelInactive(context: ChannelHandlerContext) {
    promise?.succeed()
    context.fireChannelInactive()
  }
}

extension Channel {
  /// When the client's side of this connection closes (see `InputClosedHandler`); fails on a
  /// channel without the handler.
  var inputClosed: EventLoopFuture<Void> {
    pipeline.handler(type: InputClosedHandler.self).flatMap { $0.inputClosed }
  }
}
