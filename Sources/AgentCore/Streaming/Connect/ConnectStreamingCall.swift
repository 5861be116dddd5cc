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

  static func respond(to request: Request, logger: Logger, _ handler: @escaping Handler) -> Response
  {
    if let refusal = unsupportedMediaType(request) { return refusal }
    let body = ResponseBody { writer in
      var stream = ConnectStreamWriter(writer)
      var failure: ConnectError?
      let shutdown = ShutdownNotice()
      // Also releases anything still waiting on the notice once the call is over.
      defer { shutdown.fire() }
      do {
        try await withGracefulShutdownHandler {
          try await request.body.consumeWithCancellationOnInboundClose { body in
            let payload = try await StreamRequestReader.readPayload(from: body)
            try await handler(payload, &stream, shutdown)
          }
        } onGracefulShutdown: {
          shutdown.fire()
        }
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
      try? await stream.finish(failure)
    }
    return Response(status: .ok, headers: [.contentType: contentType], body: body)
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
