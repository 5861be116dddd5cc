import NIOCore
import NIOHTTPTypes

/// Holds each flush until the event loop finishes its current job, so the parts a handler writes
/// in one go (a response's head, its body, its end) leave in one `writev`. Flushed one by one,
/// a small response is two segments, and the client wakes up once for each.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
  typealias OutboundIn = HTTPResponsePart
  typealias OutboundOut = HTTPResponsePart

  private var flushPending = false

  func flush(context: ChannelHandlerContext) {
    guard !flushPending else { return }
    flushPending = true
    context.eventLoop.assumeIsolated().execute {
      self.flushNow(context: context)
    }
  }

  // Writes still held would be dropped by the close.
  func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
    flushNow(context: context)
    context.close(mode: mode, promise: promise)
  }

  private func flushNow(context: ChannelHandlerContext) {
    guard flushPending else { return }
    flushPending = false
    context.flush()
  }
}
