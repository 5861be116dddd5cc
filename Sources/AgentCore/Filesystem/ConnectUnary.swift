import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Connect unary calls with the JSON codec, answered the way connect-go answers them.
enum ConnectUnary {
  /// connect-go reads unary bodies whole; this bounds what a client can make the agent hold.
  static let maxBodySize = 16 << 20

  /// Registers `POST /<procedure>`. `handler` runs on the thread pool with the caller's user,
  /// or, for requests `runsInline` picks, on the connection's event loop: for a few syscalls on
  /// one name, two thread hops cost more than the work (as nginx opens files on its event
  /// loop). A plain request is answered by `InlineUnaryHandler` without the router; the router
  /// takes the rest.
  static func register<Input: Decodable & Sendable, Output: Encodable & Sendable>(
    _ procedure: String, on router: Router<AgentRequestContext>, services: AgentServices,
    runsInline: @escaping @Sendable (Input) -> Bool = { _ in false },
    handler: @escaping @Sendable (Input, AgentUser) throws -> Output
  ) {
    services.inlineUnary.add("/" + procedure) { request in
      do {
        let user = try services.users.rpcUser(authorization: request.authorization)
        return prepare(
          procedure, body: request.body, user: user, services: services, runsInline: runsInline,
          handler: handler)
      } catch {
        return .answered(failure(error, procedure: procedure, services: services))
      }
    }
    router.post(RouterPath(stringLiteral: "/" + procedure)) { request, _ in
      var answer: UnaryAnswer
      do {
        var request = request
        let user = try services.rpcUser(for: request)
        if let unsupported = unsupportedMediaType(request) { return unsupported }
        let body = try await readBody(&request)
        switch prepare(
          procedure, body: body, user: user, services: services, runsInline: runsInline,
          handler: handler)
        {
        case .answered(let answered): answer = answered
        case .offloaded(let work): answer = try await services.blocking(work)
        }
      } catch {
        answer = failure(error, procedure: procedure, services: services)
      }
      return Response(
        status: answer.status, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: answer.body))
    }
  }

  /// Decodes `body` and runs `handler` at once if `runsInline` says so; else hands back the
  /// work for the thread pool. Outputs and errors are encoded either way.
  static func prepare<Input: Decodable & Sendable, Output: Encodable>(
    _ procedure: String, body: ByteBuffer, user: AgentUser, services: AgentServices,
    runsInline: (Input) -> Bool, handler: @escaping @Sendable (Input, AgentUser) throws -> Output
  ) -> UnaryWork {
    let input: Input
    do {
      input = try decode(body)
    } catch {
      return .answered(failure(error, procedure: procedure, services: services))
    }
    let work: @Sendable () -> UnaryAnswer = {
      do {
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
    return runsInline(input) ? .answered(work()) : .offloaded(work)
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
    } catch is NIOTooManyBytesError {
      throw ConnectError(
        .resourceExhausted, "message size is larger than configured max \(maxBodySize)")
    } catch {
      throw ConnectError(.invalidArgument, "read request body: \(error)")
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
