import Foundation
import Hummingbird
import NIOCore

/// Reads the single request message of a Connect server-streaming call from its body, failing the
/// way connect-go's `receiveUnaryMessage` and `envelopeReader` do.
enum StreamRequestReader {
  /// connect-go has no limit unless configured; a bound keeps a hostile body out of memory.
  static let maxMessageBytes = 16 * 1024 * 1024

  /// The JSON payload of the one envelope in `body`.
  static func readPayload(from body: RequestBody) async throws(ConnectError) -> ByteBuffer {
    var parser = EnvelopeParser(maxPayloadBytes: maxMessageBytes)
    var first: Envelope?
    do {
      for try await chunk in body {
        parser.append(chunk)
        while let envelope = try parser.next() {
          guard first == nil else {
            throw ConnectError(.unimplemented, "unary request has multiple messages")
          }
          first = envelope
        }
      }
    } catch let error as ConnectError {
      throw error
    } catch let error as EnvelopeParser.ParseError {
      guard case .tooLarge(let declared, let limit) = error else {
        throw ConnectError(.internal, "\(error)")
      }
      throw ConnectError(
        .resourceExhausted, "message size \(declared) is larger than configured max \(limit)")
    } catch {
      throw ConnectError(.unknown, "read enveloped message: \(error)")
    }
    if let truncation = parser.truncation {
      if let promised = truncation.promised {
        throw ConnectError(
          .invalidArgument,
          "protocol error: promised \(promised) bytes in enveloped message, got \(truncation.got) bytes"
        )
      }
      throw ConnectError(.invalidArgument, "protocol error: incomplete envelope: unexpected EOF")
    }
    guard let envelope = first else {
      throw ConnectError(.unimplemented, "unary request has zero messages")
    }
    guard envelope.flags & ~Envelope.compressedFlag == 0 else {
      throw ConnectError(
        .invalidArgument, "protocol error: invalid envelope flags \(envelope.flags)")
    }
    // No `Connect-Content-Encoding` is negotiated, so a compressed frame cannot be read.
    if envelope.isCompressed && envelope.payload.readableBytes > 0 {
      throw ConnectError(
        .invalidArgument, "protocol error: sent compressed message without compression support")
    }
    return envelope.payload
  }

  /// Decodes the request message; an empty payload is the zero message, as in protobuf.
  static func decode<Message: Decodable>(_ type: Message.Type, from payload: ByteBuffer)
    throws(ConnectError) -> Message
  {
    let data = payload.readableBytes == 0 ? Data("{}".utf8) : Data(payload.readableBytesView)
    return try ProtoJSON.decode(type, from: data)
  }
}
