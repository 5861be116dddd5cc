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
    // envd's: the variables a process starts with, never the agent's own (its token, say).
    let base = ProcessLauncher.baseEnvironment(
      user: services.users.defaultUser, hostRoot: services.jail.hostRoot)
    let environment = Dictionary(base, uniquingKeysWith: { $1 })
    return Response.json(try protocolJSONEncoder().encode(environment))
  }
}
