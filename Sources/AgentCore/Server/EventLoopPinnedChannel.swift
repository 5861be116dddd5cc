import HummingbirdCore
import Logging
import NIOCore

/// Runs each connection's request handling on its channel's event loop instead of the global
/// pool. A request then costs one thread wake-up, not three (loop → pool → loop); on a 2-core
/// box each wake-up is tens of microseconds, most of a small request's time. Blocking calls
/// still go to the thread pool (`AgentServices.blocking`).
///
/// `lastHandlers` go at the end of the HTTP pipeline, after Hummingbird's connection state
/// handler (which so still sees every request for keep-alive, idle timeout and shutdown).
struct EventLoopPinnedChannel<Inner: ServerChildChannel>: ServerChildChannel {
  let inner: Inner
  var lastHandlers: (@Sendable () -> [any ChannelHandler])? = nil

  func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
    let setUp = inner.setup(channel: channel, logger: logger)
    guard let lastHandlers else { return setUp }
    return setUp.flatMapThrowing { value in
      let pipeline = channel.pipeline.syncOperations
      let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
      try pipeline.addHandlers(lastHandlers(), position: .after(state))
      return value
    }
  }

  func handle(value: Inner.Value, logger: Logger) async {
    let executor = EventLoopTaskExecutor(eventLoop: value.channel.eventLoop)
    await withTaskExecutorPreference(executor) {
      await inner.handle(value: value, logger: logger)
    }
  }
}

/// A NIO event loop as a Swift task executor.
final class EventLoopTaskExecutor: TaskExecutor {
  let eventLoop: any EventLoop

  init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

  func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
  }
}
