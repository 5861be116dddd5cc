import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Runs one Connect server-streaming call. Everything after the Content-Type check is answered
/// with HTTP 200 and `application/connect+json`; errors travel in the end-stream envelope, as
/// connect-go does. The handler is cancelled when the client goes away (inbound side closed).
enum ConnectStreamingCall {
  static let contentType = "application/connect+json"

  /// The handler gets the request payload, the writer and the shutdown notice; it sends messages
  /// and returns, or throws a `ConnectError` for the end-stream envelope.
  typealias Handler =
    @Sendable (ByteBuffer, inout ConnectStreamWriter, ShutdownNotice) async throws
    -> Void

  static func respond(
    to request: Request, context: AgentRequestContext, _ handler: @escaping Handler
  ) async -> Response {
    if let refusal = unsupportedMediaType(request) { return refusal }
    let logger = context.logger
    // connect-go reads the request message before the response head goes out. A head sent
    // early makes some clients (httpx, under the E2B SDK) end their request with an empty body.
    let payload: Result<ByteBuffer, ConnectError>
    do throws(ConnectError) {
      payload = .success(try await StreamRequestReader.readPayload(from: request.body))
    } catch {
      payload = .failure(error)
    }
    let inputClosed = context.channel.inputClosed
    let body = ResponseBody { writer in
      let shutdown = ShutdownNotice()
      // Also releases anything still waiting on the notice once the call is over.
      defer { shutdown.fire() }
      let stream = StreamHandoff(ConnectStreamWriter(writer))
      let failure: ConnectError?
      do {
        let payload = try payload.get()
        try await withGracefulShutdownHandler {
          try await cancelledWhenClosed(inputClosed) {
            try await handler(payload, &stream.writer, shutdown)
          }
        } onGracefulShutdown: {
          shutdown.fire()
        }
        failure = nil
      } catch let error as ConnectError {
        failure = error
      } catch is CancellationError {
        logger.debug("streaming call ended: client went away")
        return
      } catch {
        // Writing failed: the client is gone, nothing more can be sent.
        logger.debug("streaming call ended: \(error)")
        return
      }
      if let failure, failure.code == .internal || failure.code == .unknown {
        logger.warning("streaming call failed: \(failure.code.rawValue): \(failure.message)")
      }
      try? await stream.writer.finish(failure)
    }
    return Response(status: .ok, headers: [.contentType: contentType], body: body)
  }

  /// Runs `operation` in a child task, cancelled once the client's side closes. Waits on the
  /// channel itself, not on its request stream: Hummingbird's `consumeWithCancellationOnInboundClose`
  /// closes the connection when the response ends, and envd keeps it for the next request.
  private static func cancelledWhenClosed(
    _ inputClosed: EventLoopFuture<Void>, _ operation: @escaping @Sendable () async throws -> Void
  ) async throws {
    let callOver = inputClosed.eventLoop.makePromise(of: Void.self)
    inputClosed.whenSuccess { callOver.succeed() }
    try await withThrowingTaskGroup(of: Bool.self) { group in
      group.addTask {
        defer { callOver.succeed() }
        try await operation()
        return true
      }
      group.addTask {
        try? await callOver.futureResult.get()
        return false
      }
      while let finished = try await group.next() {
        if finished { return }
        group.cancelAll()
      }
      throw CancellationError()
    }
  }

  /// connect-go answers 415 (with `Accept-Post`) when the codec is not one it serves; this agent
  /// serves the JSON codec only.
  static func unsupportedMediaType(_ request: Request) -> Response? {
    let value = (request.headers[.contentType] ?? "").lowercased()
      .replacingOccurrences(of: " ", with: "")
    if value == contentType || value == contentType + ";charset=utf-8" { return nil }
    return Response(
      status: .unsupportedMediaType,
      headers: [HTTPField.Name("Accept-Post")!: contentType])
  }
}

/// The stream's writer, handed to the child task that runs the handler: one task uses it at a
/// time (the handler, then the end-stream once the handler's task is over).
private final class StreamHandoff: @unchecked Sendable {
  var writer: ConnectStreamWriter
  init(_ writer: ConnectStreamWriter) { self.writer = writer }
}
