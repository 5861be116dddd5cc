import Foundation
import Hummingbird

extension Response {
  /// envd's HTTP error: `{"code":<int>,"message":"…"}` + newline, `application/json; charset=utf-8`.
  public static func envdError(_ error: EnvdHTTPError) -> Response {
    Response(
      status: .init(code: error.status),
      headers: [.contentType: "application/json; charset=utf-8"],
      body: .init(byteBuffer: ByteBuffer(bytes: error.protocolJSON)))
  }

  /// A unary Connect error: JSON body with the code's HTTP status.
  public static func connectError(_ error: ConnectError) -> Response {
    Response(
      status: .init(code: error.code.httpStatus),
      headers: [.contentType: "application/json"],
      body: .init(byteBuffer: ByteBuffer(bytes: error.protocolJSON)))
  }

  public static func json(
    _ data: Data, status: HTTPResponse.Status = .ok, contentType: String = "application/json"
  )
    -> Response
  {
    Response(
      status: status, headers: [.contentType: contentType],
      body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }

  /// Go's `http.Error` / `http.NotFound`: plain text plus newline.
  public static func plainText(_ text: String, status: HTTPResponse.Status) -> Response {
    Response(
      status: status,
      headers: [
        .contentType: "text/plain; charset=utf-8", .init("X-Content-Type-Options")!: "nosniff",
      ],
      body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
  }
}

/// JSON encoder for protocol answers: no `\/` escaping, and keys in a stable order.
public func protocolJSONEncoder() -> JSONEncoder {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
  return encoder
}

extension ConnectError {
  /// `{"code":"…","message":"…"}` without `\/` escapes.
  public var protocolJSON: Data {
    (try? protocolJSONEncoder().encode(["code": code.rawValue, "message": message])) ?? jsonBody
  }
}

extension EnvdHTTPError {
  /// Go's `json.Encoder` output: `{"code":404,"message":"…"}` + newline, keys in that order.
  public var protocolJSON: Data {
    let message = (try? protocolJSONEncoder().encode(message)) ?? Data("\"\"".utf8)
    var data = Data("{\"code\":\(status),\"message\":".utf8)
    data.append(message)
    data.append(contentsOf: Array("}\n".utf8))
    return data
  }
}
