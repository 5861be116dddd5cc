import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The routes of `--protocol langsmith`: LangSmith's sandbox API as its official SDK calls it
/// (`langsmith` 0.15.1 is the reference), over the served folder.
///
/// - control plane, under `/api/v2/sandboxes` (or `/v2/sandboxes`): `GET /boxes/{name}`, its
///   `status`, `start` and `stop`, and `GET|POST /boxes`, `DELETE /boxes/{name}` (all this box);
/// - dataplane, at the top (the box's `dataplane_url` is this agent): `GET|HEAD /download`,
///   `POST /upload`, `POST /glob`, `POST /grep`; commands over the WebSocket `/execute/ws`
///   (see `LangSmithWebSocket.swift`, upgraded before the router) or over SSE,
///   `POST /execute/stream/start|resume` (see `LangSmithSSE.swift`).
///
/// Errors are `{"detail":{"error","message"}}`; `X-Api-Key` is checked when a token is set.
func buildLangSmithRouter(sandbox: LangSmithSandbox) -> Router<AgentRequestContext> {
  let services = sandbox.services
  let router = Router(context: AgentRequestContext.self)
  router.add(middleware: RequestLogMiddleware(counters: services.counters))
  router.add(middleware: VendorErrorMiddleware<LangSmithError>())
  router.add(middleware: LangSmithAuthMiddleware(token: services.accessToken))
  for prefix in ["/api/v2/sandboxes", "/v2/sandboxes"] {
    let boxes = RouterPath(prefix + "/boxes")
    let box = boxes.appendingPath(":name")
    router.get(box) { request, context in
      langSmithJSON(
        sandbox.box(name: try context.parameters.require("name"), host: request.head.authority))
    }
    router.get(boxes) { request, _ in
      langSmithJSON(["sandboxes": [sandbox.box(name: "sandbox", host: request.head.authority)]])
    }
    // Creating a box hands out this one (ready at once); deleting it changes nothing.
    router.post(boxes) { request, _ in
      let body = try await decodeLangSmithBody(LangSmithCreateBox.self, request)
      let name = body.name ?? "sandbox-" + String(UUID().uuidString.prefix(8)).lowercased()
      return langSmithJSON(sandbox.box(name: name, host: request.head.authority))
    }
    router.delete(box) { _, _ in Response(status: .noContent) }
    router.get(box.appendingPath("status")) { _, _ in
      langSmithJSON(["status": "ready"])
    }
    router.post(box.appendingPath("start")) { request, context in
      langSmithJSON(
        sandbox.box(name: try context.parameters.require("name"), host: request.head.authority))
    }
    // Stopping the box kills its commands; the files stay, and the box is ready again at once.
    router.post(box.appendingPath("stop")) { _, _ in
      sandbox.commands.killAll()
      return langSmithJSON([String: Any]())
    }
  }
  router.get("/download") { request, _ in try await sandbox.download(request, head: false) }
  router.head("/download") { request, _ in try await sandbox.download(request, head: true) }
  router.post("/upload") { request, _ in try await sandbox.upload(request) }
  router.post("/glob") { request, _ in
    Response.json(try await sandbox.glob(decodeLangSmithBody(LangSmithGlobRequest.self, request)))
  }
  router.post("/grep") { request, _ in
    Response.json(try await sandbox.grep(decodeLangSmithBody(LangSmithGrepRequest.self, request)))
  }
  router.post("/execute/stream/start") { request, _ in try await sandbox.startStream(request) }
  router.post("/execute/stream/resume") { request, _ in try await sandbox.resumeStream(request) }
  // Reached only when the upgrade was refused (a wrong key is 401 before this).
  router.get(RouterPath(LangSmithSandbox.webSocketPath)) { _, _ -> Response in
    throw LangSmithError.badRequest("expected a WebSocket upgrade")
  }
  return router
}

/// `POST /boxes`' body, as far as this agent reads it.
struct LangSmithCreateBox: Decodable, Sendable {
  var name: String?
}
