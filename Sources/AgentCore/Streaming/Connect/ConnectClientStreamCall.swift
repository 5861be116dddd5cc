import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Runs one Connect client-streaming call (`Process/StreamInput`): the request body is a sequence
/// of envelopes, each handled as it arrives. The answer goes out when the handler returns, as
/// connect-go sends it: HTTP 200 with the reply message and the end-stream `{}`, or with only an
/// end-stream that carries the error. Whatever the client still sends after an error is drained.
enum ConnectClientStreamCall {
  typealias Handler = @Sendable (inout ClientMessages) async throws(ConnectError) -> Void

  static func respond<Reply: Encodable & Sendable>(
    to request: Request, reply: Reply, _ handler: Handler
  ) async -> Response {
    if let refusal = ConnectStreamingCall.unsupportedMediaType(request) { return refusal }
    var messages = ClientMessages(request.body)
    let allocator = ByteBufferAllocator()
    var body: ByteBuffer
    do throws(ConnectError) {
      try await handler(&messages)
      // A handler that stopped early still has to see the stream end cleanly.
      while try await messages.next() != nil {}
      body = ConnectStreamWriter.frame(ProtoJSON.encode(reply), flags: 0, allocator: allocator)
      var end = ConnectStreamWriter.frame(
        ConnectStreamWriter.endStreamPayload(nil), flags: Envelope.endStreamFlag,
        allocator: allocator)
      body.writeBuffer(&end)
    } catch {
      body = ConnectStreamWriter.frame(
        ConnectStreamWriter.endStreamPayload(error), flags: Envelope.endStreamFlag,
        allocator: allocator)
    }
    return Response(
      status: .ok, headers: [.contentType: ConnectStreamingCall.contentType],
      body: .init(byteBuffer: body))
  }
}

/// The request messages of a client stream, read from the body as they arrive, with connect-go's
/// envelope errors.
struct ClientMessages {
  private var iterator: RequestBody.AsyncIterator
  private var parser = EnvelopeParser(maxPayloadBytes: StreamRequestReader.maxMessageBytes)
  private var ended = false

  init(_ body: RequestBody) {
    iterator = body.makeAsyncIterator()
  }

  /// The next message's JSON payload, or nil once the request has ended.
  mutating func next() async throws(ConnectError) -> ByteBuffer? {
    while true {
      let envelope: Envelope?
      do {
        envelope = try parser.next()
      } catch {
        guard case .tooLarge(let declared, let limit) = error else {
          throw ConnectError(.internal, "\(error)")
        }
        throw ConnectError(
          .resourceExhausted, "message size \(declared) is larger than configured max \(limit)")
      }
      if let envelope {
        guard envelope.flags & ~Envelope.compressedFlag == 0 else {
          throw ConnectError(
            .invalidArgument, "protocol error: invalid envelope flags \(envelope.flags)")
        }
        if envelope.isCompressed && envelope.payload.readableBytes > 0 {
          throw ConnectError(
            .invalidArgument, "protocol error: sent compressed message without compression support"
          )
        }
        return envelope.payload
      }
      if ended { return try finishedCleanly() }
      let chunk: ByteBuffer?
      do {
        chunk = try await iterator.next()
      } catch {
        throw ConnectError(.unknown, "error streaming input: \(error)")
      }
      if let chunk { parser.append(chunk) } else { ended = true }
    }
  }

  /// At the end of the body: nil, or connect-go's error for a frame cut short.
  private func finishedCleanly() throws(ConnectError) -> ByteBuffer? {
    guard let truncation = parser.truncation else { return nil }
    if let promised = truncation.promised {
      throw ConnectError(
        .invalidArgument,
        "protocol error: promised \(promised) bytes in enveloped message, got \(truncation.got) bytes"
      )
    }
    throw ConnectError(.invalidArgument, "protocol error: incomplete envelope: unexpected EOF")
  }
}
