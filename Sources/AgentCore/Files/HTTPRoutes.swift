import Hummingbird

/// envd's plain HTTP routes: /health, /metrics, /envs, GET and POST /files.
func registerHTTPRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
  router.get("/health") { _, _ in Response(status: .noContent) }
  router.get("/files") { request, _ in await FileDownload(services: services).respond(to: request) }
  router.post("/files") { request, _ in await FileUpload(services: services).respond(to: request) }
}
