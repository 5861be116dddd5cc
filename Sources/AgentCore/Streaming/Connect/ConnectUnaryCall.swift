import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Runs one Connect unary JSON call (protocol doc §5.1) for the process service: JSON in, JSON
/// out, errors as `{"code","message"}` with connect-go's HTTP status.
enum ConnectUnaryCall {
  static let maxBodyBytes = 16 * 1024 * 1024

  static func respond<Message: Decodable & Sendable, Reply: Encodable>(
    to request: Request, _ type: Message.Type,
    _ handler: @Sendable (Message) async throws(ConnectError) -> Reply
  ) async -> Response {
    let value = (request.headers[.contentType] ?? "").lowercased()
      .replacingOccurrences(of: " ", with: "")
    guard value == "application/json" || value == "application/json;charset=utf-8" else {
      return Response(
        status: .unsupportedMediaType,
        headers: [HTTPField.Name("Accept-Post")!: "application/json"])
    }
    do throws(ConnectError) {
      var body = ByteBuffer()
      do {
        var request = request
        body = try await request.collectBody(upTo: maxBodyBytes)
      } catch is NIOTooManyBytesError {
        throw ConnectError(
          .resourceExhausted, "message size is larger than configured max \(maxBodyBytes)")
      } catch {
        // Broken framing (a bad chunk size, a short body) is the client's fault, not a quota.
        throw ConnectError(.invalidArgument, "read request body: \(error)")
      }
      let message = try ProtoJSON.decode(type, from: Data(body.readableBytesView))
      let reply = try await handler(message)
      return Response(
        status: .ok, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(bytes: ProtoJSON.encode(reply))))
    } catch {
      return Response(
        status: .init(code: error.code.httpStatus), headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(bytes: error.jsonBody)))
    }
  }
}
