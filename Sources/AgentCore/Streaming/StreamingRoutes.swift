import Glibc
import Hummingbird

/// Connect server-streaming routes and their unary companions: `filesystem.Filesystem/WatchDir`
/// and `process.Process/{Start,Connect,StreamInput,SendSignal,SendInput,CloseStdin,Update,List}`.
///
/// Auth is enforced by `AccessTokenMiddleware` before these handlers run. They read the request
/// body themselves, whole, before the response head goes out.
func registerStreamingRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
  // Writing to the stdin pipe of a process that has exited must fail with EPIPE, not kill the
  // agent. Children get the default disposition back at spawn.
  signal(SIGPIPE, SIG_IGN)
  registerProcessRoutes(on: router, services: services, processes: ProcessTable())
  registerWatchRoutes(on: router, services: services)
}
