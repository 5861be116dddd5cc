import Hummingbird

/// The agent's own extension (docs/agent-extension.md): `POST /sandboxagent.v1.Extension/<Method>`
/// as Connect unary JSON, plus the offset-write route. With `--envd-compat` nothing is registered,
/// so every extension path answers exactly like an unknown path and clients fall back to envd.
func registerExtensionRoutes(on router: Router<AgentRequestContext>, services: AgentServices) {
  guard !services.configuration.envdCompat else { return }
  let service = ExtensionService(services: services)
  var methods: [String] = []
  if !CallerCredentials.honoured {
    services.logger.notice(
      "not running as root: extension calls act as the agent's own user, whatever caller they name"
    )
  }

  /// A call naming a caller runs on the thread pool, where its thread's credentials are switched
  /// for exactly its syscalls; `switchesItself`: the handler does that per part (Batch).
  func add<Input: Decodable & Sendable & CallerCarrying, Output: Encodable & Sendable>(
    _ method: String, runsInline: (@Sendable (Input) -> Bool)? = nil,
    switchesItself: Bool = false,
    _ handler: @escaping @Sendable (Input, AgentUser) throws(ErrnoError) -> Output
  ) {
    methods.append(method)
    let inline = ExtensionRoutes.inlineMethods.contains(method)
    let light = runsInline ?? { _ in inline }
    let inlineWithoutCaller: @Sendable (Input) -> Bool = { input in
      (input.caller == nil || !CallerCredentials.honoured) && light(input)
    }
    ConnectUnary.register(
      ExtensionRoutes.service + "/" + method, on: router, services: services,
      runsInline: inlineWithoutCaller
    ) { (input: Input, user: AgentUser) throws -> Output in
      do throws(ErrnoError) {
        if switchesItself { return try handler(input, user) }
        return try CallerCredentials.perform(as: input.caller) { () throws(ErrnoError) in
          try handler(input, user)
        }
      } catch {
        throw error.connectError
      }
    }
  }

  add("Stat") { (request: ExtensionPathRequest, _) throws(ErrnoError) in try service.stat(request) }
  add("ListDir") { (request: ExtensionPathRequest, _) throws(ErrnoError) in
    try service.listDir(request)
  }
  add("Readlink") { (request: ExtensionPathRequest, _) throws(ErrnoError) in
    try service.readlink(request)
  }
  add("Statfs") { (request: ExtensionEmptyRequest, _) throws(ErrnoError) in
    try service.statfs(request)
  }
  add("Unlink") { (request: ExtensionPathRequest, _) throws(ErrnoError) in
    try service.unlink(request)
  }
  add("Rmdir") { (request: ExtensionPathRequest, _) throws(ErrnoError) in
    try service.rmdir(request)
  }
  add("Mkdir") { (request: ExtensionCreateRequest, user) throws(ErrnoError) in
    try service.mkdir(request, user: user)
  }
  add("Mknod") { (request: ExtensionCreateRequest, user) throws(ErrnoError) in
    try service.mknod(request, user: user)
  }
  add("Create") { (request: ExtensionCreateRequest, user) throws(ErrnoError) in
    try service.create(request, user: user)
  }
  add("Symlink") { (request: ExtensionCreateRequest, user) throws(ErrnoError) in
    try service.symlink(request, user: user)
  }
  add("Link") { (request: ExtensionTwoPathRequest, _) throws(ErrnoError) in
    try service.link(request)
  }
  add("Rename") { (request: ExtensionTwoPathRequest, _) throws(ErrnoError) in
    try service.rename(request)
  }
  // A truncate may free much of a disk: off the event loop. chmod, chown, utimens stay on it.
  add("Setattr", runsInline: { $0.size == nil }) {
    (request: ExtensionSetattrRequest, _) throws(ErrnoError) in
    try service.setattr(request)
  }
  add("Fsync") { (request: ExtensionFsyncRequest, _) throws(ErrnoError) in
    try service.fsync(request)
  }
  add("Batch", switchesItself: true) { (request: ExtensionBatchRequest, user) throws(ErrnoError) in
    service.batch(request, user: user)
  }
  add("Counters") { (_: ExtensionEmptyRequest, _) throws(ErrnoError) in
    ExtensionCountersResponse(
      requests: String(services.counters.requests), bytesIn: String(services.counters.bytesIn))
  }
  let capabilities = ExtensionCapabilitiesResponse(
    version: ExtensionRoutes.version, methods: (methods + ["Capabilities"]).sorted(),
    write: ExtensionRoutes.writePath, actsAsCaller: CallerCredentials.honoured)
  add("Capabilities") { (_: ExtensionEmptyRequest, _) throws(ErrnoError) in capabilities }

  router.post(RouterPath(stringLiteral: ExtensionRoutes.writePath)) { request, _ in
    await OffsetWrite(services: services).respond(to: request)
  }
  services.inlineUnary.add(ExtensionRoutes.writePath, connect: false) { request in
    OffsetWrite(services: services).answer(request)
  }
}

enum ExtensionRoutes {
  /// A few syscalls on one name each: run on the event loop, not the thread pool. ListDir
  /// (a whole folder), Fsync and Statfs stay off it; Setattr leaves it for a truncate.
  static let inlineMethods: Set<String> = [
    "Stat", "Readlink", "Unlink", "Rmdir", "Mkdir", "Mknod", "Create", "Symlink", "Link",
    "Rename", "Counters", "Capabilities",
  ]
  static let service = "sandboxagent.v1.Extension"
  static let version = 1
  static let writePath = "/sandboxagent/v1/files"
}
