import Hummingbird

/// Connect unary routes of `filesystem.Filesystem`.
func registerFilesystemRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
  let service = FilesystemService(services: services)
  ConnectUnary.register("filesystem.Filesystem/Stat", on: router, services: services) {
    try service.stat($0, user: $1)
  }
  ConnectUnary.register("filesystem.Filesystem/ListDir", on: router, services: services) {
    try service.listDir($0, user: $1)
  }
  ConnectUnary.register("filesystem.Filesystem/MakeDir", on: router, services: services) {
    try service.makeDir($0, user: $1)
  }
  ConnectUnary.register("filesystem.Filesystem/Move", on: router, services: services) {
    try service.move($0, user: $1)
  }
  ConnectUnary.register("filesystem.Filesystem/Remove", on: router, services: services) {
    try service.remove($0, user: $1)
  }
}
