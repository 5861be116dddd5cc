/// Paths envd serves, so a wrong method answers 405 (chi / connect-go) rather than 404.
enum KnownRoutes {
  /// chi routes and their methods.
  static let http: [String: Set<String>] = [
    "/health": ["GET"], "/files": ["GET", "POST"], "/metrics": ["GET"], "/envs": ["GET"],
  ]

  /// Every Connect procedure envd registers, as `/<package>.<Service>/<Method>`.
  static let procedures: Set<String> = [
    "/filesystem.Filesystem/Stat", "/filesystem.Filesystem/MakeDir", "/filesystem.Filesystem/Move",
    "/filesystem.Filesystem/ListDir", "/filesystem.Filesystem/Remove",
    "/filesystem.Filesystem/WatchDir", "/filesystem.Filesystem/CreateWatcher",
    "/filesystem.Filesystem/GetWatcherEvents", "/filesystem.Filesystem/RemoveWatcher",
    "/process.Process/List", "/process.Process/Connect", "/process.Process/Start",
    "/process.Process/Update", "/process.Process/StreamInput", "/process.Process/SendInput",
    "/process.Process/SendSignal", "/process.Process/CloseStdin",
  ]
}
