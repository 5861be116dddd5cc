import Hummingbird

/// Connect unary routes of `filesystem.Filesystem`.
func registerFilesystemRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
}
