import Hummingbird

/// Connect server-streaming routes (`filesystem.Filesystem/WatchDir`, `process.Process/*`).
/// Owned by the streaming engineer (A2); this folder is theirs.
///
/// What a handler here can rely on:
/// - Auth is already enforced by `AccessTokenMiddleware` (envd 401 JSON) before it runs.
/// - `services.rpcUser(for: request)` resolves `Authorization: Basic base64(user:)` (default user
///   when absent; `ConnectError(.unauthenticated, "invalid username: 'x'")` when unknown).
/// - `services.rpcPath(raw, user:)` expands `~`/relative paths like envd and refuses `..`
///   escapes with `ConnectError(.invalidArgument, …)`; `services.jail` opens paths inside the
///   root (`jail.open(path, flags:)`, `jail.stat`, `jail.lstat`, `jail.protocolPath(of:)`).
/// - `EntryInfo.make(...)` (Filesystem/) builds envd's EntryInfo for `includeEntry`.
/// - `services.blocking { … }` runs blocking work on NIO's thread pool.
/// - `context.logger` is the per-request logger (request id attached); never log the token.
/// - Unregistered known procedures answer Connect `unimplemented`; unknown paths 404.
func registerStreamingRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
}
