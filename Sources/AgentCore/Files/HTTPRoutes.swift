import Foundation
import Hummingbird

/// envd's plain HTTP routes: /health, /metrics, /envs, GET and POST /files.
func registerHTTPRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
  router.get("/health") { _, _ in Response(status: .noContent) }
  router.get("/files") { request, _ in await FileDownload(services: services).respond(to: request) }
  router.post("/files") { request, _ in await FileUpload(services: services).respond(to: request) }

  let sampler = HostMetricsSampler()
  router.get("/metrics") { _, _ in
    let root = services.jail.hostRoot
    let metrics = try await services.blocking { sampler.sample(root: root) }
    return Response.json(try protocolJSONEncoder().encode(metrics))
  }
  router.get("/envs") { _, _ in
    // The agent's own environment, without its secret.
    var environment = ProcessInfo.processInfo.environment
    environment["SANDBOX_AGENT_TOKEN"] = nil
    return Response.json(try protocolJSONEncoder().encode(environment))
  }
}
