import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Connect unary calls with the JSON codec, answered the way connect-go answers them.
enum ConnectUnary {
  /// connect-go reads unary bodies whole; this bounds what a client can make the agent hold.
  static let maxBodySize = 16 << 20

  /// Registers `POST /<procedure>`. `handler` runs on the thread pool with the caller's user,
  /// or with `inline`, on the connection's event loop: for a few syscalls on one name, two
  /// thread hops cost more than the work (as nginx opens files on its event loop). A plain
  /// request is answered by `InlineUnaryHandler` without the router; the router takes the rest.
  static func register<Input: Decodable & Sendable, Output: Encodable & Sendable>(
    _ procedure: String, on router: Router<AgentRequestContext>, services: AgentServices,
    inline: Bool = false, handler: @escaping @Sendable (Input, AgentUser) throws -> Output
  ) {
    services.inlineUnary.add("/" + procedure, offload: !inline) { body, authorization in
      do {
        let user = try services.users.rpcUser(authorization: authorization)
        return answer(procedure, body: body, user: user, services: services, handler: handler)
      } catch {
        return failure(error, procedure: procedure, services: services)
      }
    }
    router.post(RouterPath(stringLiteral: "/" + procedure)) { request, _ in
      let answer: UnaryAnswer
      do {
        var request = request
        let user = try services.rpcUser(for: request)
        if let unsupported = unsupportedMediaType(request) { return unsupported }
        let body = try await readBody(&request)
        answer =
          inline
          ? Self.answer(procedure, body: body, user: user, services: services, handler: handler)
          : try await services.blocking {
            Self.answer(procedure, body: body, user: user, services: services, handler: handler)
          }
      } catch {
        answer = failure(error, procedure: procedure, services: services)
      }
      return Response(
        status: answer.status, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: answer.body))
    }
  }

  /// Decodes `body`, runs `handler` and encodes its output or its error.
  static func answer<Input: Decodable, Output: Encodable>(
    _ procedure: String, body: ByteBuffer, user: AgentUser, services: AgentServices,
    handler: (Input, AgentUser) throws -> Output
  ) -> UnaryAnswer {
    do {
      let input: Input = try decode(body)
      let output = try handler(input, user)
      if let writable = output as? any ProtocolJSONWritable {
        var json = ProtocolJSONWriter(capacity: writable.estimatedJSONSize)
        writable.write(to: &json)
        return UnaryAnswer(status: .ok, body: ByteBuffer(bytes: json.bytes))
      }
      return UnaryAnswer(
        status: .ok, body: ByteBuffer(bytes: try protocolJSONEncoder().encode(output)))
    } catch {
      return failure(error, procedure: procedure, services: services)
    }
  }

  private static func failure(_ error: any Error, procedure: String, services: AgentServices)
    -> UnaryAnswer
  {
    let connectError = error as? ConnectError ?? ConnectError(.internal, "\(error)")
    if connectError.code == .internal || connectError.code == .unknown {
      services.logger.warning("\(procedure): \(connectError.message)")
    }
    return UnaryAnswer(
      status: .init(code: connectError.code.httpStatus),
      body: ByteBuffer(bytes: connectError.protocolJSON))
  }

  /// Only `application/json` is served (no binary proto); anything else is 415.
  private static func unsupportedMediaType(_ request: Request) -> Response? {
    let media = HeaderParameters(request.headers[.contentType] ?? "").value
    if media == "application/json" { return nil }
    return Response(
      status: .unsupportedMediaType, headers: [HTTPField.Name("Accept-Post")!: "application/json"])
  }

  private static func readBody(_ request: inout Request) async throws -> ByteBuffer {
    let encoding = HeaderParameters(request.headers[.contentEncoding] ?? "").value
    guard encoding.isEmpty || encoding == "identity" || encoding == "gzip" else {
      throw ConnectError(
        .unimplemented, "unknown compression \"\(encoding)\": supported encodings are gzip")
    }
    let raw: ByteBuffer
    do {
      raw = try await request.collectBody(upTo: maxBodySize)
    } catch {
      throw ConnectError(
        .resourceExhausted, "message size is larger than configured max \(maxBodySize)")
    }
    guard encoding == "gzip" else { return raw }
    var decoded = ByteBuffer()
    do {
      let gzip = GzipDecompressor()
      try gzip.decompress(raw) { piece in
        guard decoded.readableBytes + piece.readableBytes <= maxBodySize else {
          throw ConnectError(
            .resourceExhausted, "message is larger than configured max \(maxBodySize)")
        }
        decoded.writeImmutableBuffer(piece)
      }
      try gzip.finish()
    } catch let error as ConnectError {
      throw error
    } catch {
      throw ConnectError(.invalidArgument, "decompress message: \(error)")
    }
    return decoded
  }

  /// protojson with `DiscardUnknown`: unknown fields are ignored; an empty or malformed body is
  /// `invalid_argument`.
  private static func decode<Input: Decodable>(_ body: ByteBuffer) throws -> Input {
    guard body.readableBytes > 0 else {
      throw ConnectError(.invalidArgument, "unmarshal message: unexpected end of JSON input")
    }
    do {
      return try JSONDecoder().decode(Input.self, from: Data(body.readableBytesView))
    } catch {
      throw ConnectError(.invalidArgument, "unmarshal message: \(Self.describe(error))")
    }
  }

  private static func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let context): context.debugDescription
    case DecodingError.typeMismatch(_, let context):
      "invalid value for \(context.codingPath.map(\.stringValue).joined(separator: "."))"
    default: "syntax error"
    }
  }
}
