import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The routes of `--protocol vercel`: Vercel Sandbox's REST API as its official SDKs call it
/// (`vercel-sandbox` 0.10.0 is the reference), under `/api` or at the top, over the served folder.
///
/// - `GET /v2/sandboxes/{name}` (`?resume=true` after a stop starts a new session),
///   `GET /v2/sandboxes/sessions/{id}`, `POST …/stop`;
/// - under `/v2/sandboxes/sessions/{id}/`: `fs/read`, `fs/write`, `fs/mkdir`, `cmd` (POST to
///   start, with `wait` an NDJSON stream; GET to list), `cmd/{cmd}` (`?wait=true`),
///   `cmd/{cmd}/logs`, `cmd/{cmd}/kill`, `cmd/{cmd}/stdin`.
///
/// Paths: see `VercelSandbox`. Errors are `{"error":{"code","message"}}`.
func buildVercelRouter(services: AgentServices) throws -> Router<AgentRequestContext> {
  let sandbox = try VercelSandbox(services: services)
  let router = Router(context: AgentRequestContext.self)
  router.add(middleware: RequestLogMiddleware(counters: services.counters))
  router.add(middleware: VendorErrorMiddleware<VercelError>())
  router.add(middleware: VercelAuthMiddleware(token: services.accessToken))
  for prefix in ["", "/api"] {
    registerVercelRoutes(on: router, prefix: prefix, sandbox: sandbox)
  }
  return router
}

private func registerVercelRoutes(
  on router: Router<AgentRequestContext>, prefix: String, sandbox: VercelSandbox
) {
  let base = RouterPath(prefix + "/v2/sandboxes")
  let session = RouterPath(prefix + "/v2/sandboxes/sessions/:session")

  router.get(base.appendingPath(":name")) { request, context in
    let name = try context.parameters.require("name")
    let resume = request.uri.queryParameters.get("resume") == "true"
    return vercelJSON(sandbox.lookup(name: name, resume: resume))
  }
  router.get(session) { _, context in
    try sandbox.checkSession(context.parameters.require("session"), allowStopped: true)
    return vercelJSON(sandbox.sessionResponse())
  }
  router.post(session.appendingPath("stop")) { _, context in
    try sandbox.checkSession(context.parameters.require("session"), allowStopped: true)
    return vercelJSON(sandbox.stop())
  }

  router.post(session.appendingPath("fs/read")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    return try await sandbox.read(decodeVercelBody(VercelPathRequest.self, request))
  }
  router.post(session.appendingPath("fs/mkdir")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    try await sandbox.mkdir(decodeVercelBody(VercelPathRequest.self, request))
    return vercelJSON([:])
  }
  router.post(session.appendingPath("fs/write")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    try await sandbox.write(request)
    return vercelJSON([:])
  }

  router.get(session.appendingPath("cmd")) { _, context in
    try sandbox.checkSession(context.parameters.require("session"))
    return vercelJSON(["commands": sandbox.commands.all.map(\.json)])
  }
  router.post(session.appendingPath("cmd")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    let body = try await decodeVercelBody(VercelCommandRequest.self, request)
    let command = try sandbox.start(body)
    let wait = body.wait == true || request.uri.queryParameters.get("wait") == "true"
    guard wait else { return vercelJSON(["command": command.json]) }
    return vercelNDJSON(command: command, withCommand: true)
  }
  router.get(session.appendingPath("cmd/:command")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    let command = try sandbox.commands.find(context.parameters.require("command"))
    if request.uri.queryParameters.get("wait") == "true" { _ = await command.waitForExit() }
    return vercelJSON(["command": command.json])
  }
  router.get(session.appendingPath("cmd/:command/logs")) { _, context in
    try sandbox.checkSession(context.parameters.require("session"))
    let command = try sandbox.commands.find(context.parameters.require("command"))
    return vercelNDJSON(command: command, withCommand: false)
  }
  router.post(session.appendingPath("cmd/:command/kill")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    let command = try sandbox.commands.find(context.parameters.require("command"))
    let body = try await decodeVercelBody(VercelKillRequest.self, request)
    let signal = Int32(body.signal ?? 15)
    guard (1...64).contains(signal) else { throw VercelError.badRequest("bad signal \(signal)") }
    _ = command.process.signal(signal)
    return vercelJSON(["command": command.json])
  }
  router.post(session.appendingPath("cmd/:command/stdin")) { request, context in
    try sandbox.checkSession(context.parameters.require("session"))
    let command = try sandbox.commands.find(context.parameters.require("command"))
    let body = try await decodeVercelBody(VercelStdinRequest.self, request)
    var data = Data()
    if let encoded = body.data {
      guard let decoded = Data(base64Encoded: encoded) else {
        throw VercelError.badRequest("data must be base64")
      }
      data = decoded
    }
    let written = try await command.writeStdin(
      data, offset: body.offset, close: body.close ?? false)
    return vercelJSON(["command": command.json, "bytesWritten": written])
  }
}

struct VercelKillRequest: Decodable, Sendable {
  var signal: Int?
}

struct VercelStdinRequest: Decodable, Sendable {
  var data: String?
  var offset: Int?
  var close: Bool?
}

/// JSON bodies are small (stdin chunks are at most 512 KiB before base64).
func decodeVercelBody<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
  let body: ByteBuffer
  do {
    body = try await request.body.collect(upTo: 4 << 20)
  } catch is NIOTooManyBytesError {
    throw VercelError(413, "payload_too_large", "the request body is too large")
  } catch {
    throw VercelError.badRequest("the request body could not be read: \(error)")
  }
  do {
    return try JSONDecoder().decode(T.self, from: Data(buffer: body))
  } catch {
    throw VercelError.badRequest("invalid request body: \(error)")
  }
}

func vercelJSON(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
  .json(vercelEncode(object), status: status)
}

func vercelEncode(_ object: [String: Any]) -> Data {
  (try? JSONSerialization.data(
    withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    ?? Data("{}".utf8)
}

/// NDJSON of a command: optionally `{command}` first, then every log record from the start,
/// live until the command ends, then (with `withCommand`) the final `{command}` with `exitCode`.
func vercelNDJSON(command: VercelCommand, withCommand: Bool) -> Response {
  let body = ResponseBody { writer in
    func line(_ object: [String: Any]) -> ByteBuffer {
      var data = vercelEncode(object)
      data.append(0x0A)
      return ByteBuffer(bytes: data)
    }
    if withCommand { try await writer.write(line(["command": command.startedJSON])) }
    var index = 0
    while true {
      let (records, ended) = await command.records(from: index)
      index += records.count
      if !records.isEmpty {
        var batch = ByteBuffer()
        for record in records {
          var one = line(record.json)
          batch.writeBuffer(&one)
        }
        try await writer.write(batch)
      }
      if ended { break }
      try Task.checkCancellation()
    }
    if withCommand { try await writer.write(line(["command": command.json])) }
    try await writer.finish(nil)
  }
  return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: body)
}

/// Vercel's bearer token: with no token configured any (or none) is accepted; else a missing
/// one is 401 and a wrong one 403.
struct VercelAuthMiddleware: RouterMiddleware {
  typealias Context = AgentRequestContext
  let token: AccessToken?

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    guard let token else { return try await next(request, context) }
    guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ")
    else {
      throw VercelError(401, "unauthorized", "a bearer token is required")
    }
    let presented = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    guard token.matches(presented) else {
      context.logger.warning("request with a wrong token: \(request.method) \(request.uri.path)")
      throw VercelError(403, "forbidden", "the token is not valid for this sandbox")
    }
    return try await next(request, context)
  }
}
