import CoreWeaveProtocol
import GRPCCore

/// `coreweave.sandbox.v1.SandboxService` over the served folder. `ConnectSandbox` (direct mTLS
/// to the sandbox) is not offered: the SDK's default mode then keeps using this endpoint as its
/// gateway.
struct CoreWeaveService: Coreweave_Sandbox_V1_SandboxService.SimpleServiceProtocol {
  let sandbox: CoreWeaveSandbox

  func getSandbox(request: Coreweave_Sandbox_V1_GetSandboxRequest, context: ServerContext)
    async throws -> Coreweave_Sandbox_V1_Sandbox
  {
    try sandbox.check(request.sandboxID)
    return sandbox.describe()
  }

  func connectSandbox(
    request: Coreweave_Sandbox_V1_ConnectSandboxRequest, context: ServerContext
  ) async throws -> Coreweave_Sandbox_V1_SandboxConnection {
    throw RPCError(
      code: .unimplemented, message: "direct connections are not offered; use this endpoint")
  }

  func streamExec(
    request: RPCAsyncSequence<Coreweave_Sandbox_V1_ExecStreamRequest, any Error>,
    response: RPCWriter<Coreweave_Sandbox_V1_ExecStreamResponse>,
    context: ServerContext
  ) async throws {
    try await sandbox.streamExec(request: request, response: response)
  }

  func writeFile(request: Coreweave_Sandbox_V1_WriteFileRequest, context: ServerContext)
    async throws -> Coreweave_Sandbox_V1_WriteFileResponse
  {
    try await sandbox.writeFile(request)
  }

  func readFile(request: Coreweave_Sandbox_V1_ReadFileRequest, context: ServerContext)
    async throws -> Coreweave_Sandbox_V1_ReadFileResponse
  {
    try await sandbox.readFile(request)
  }
}

/// With a token configured, every call must carry `authorization: Bearer TOKEN`, as the SDK
/// sends its API key.
struct CoreWeaveBearerAuth: ServerInterceptor {
  let token: AccessToken

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next:
      @Sendable (StreamingServerRequest<Input>, ServerContext) async throws ->
      StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    let header = request.metadata[stringValues: "authorization"].first { _ in true }
    let prefix = "bearer "
    guard let header, header.lowercased().hasPrefix(prefix),
      token.matches(String(header.dropFirst(prefix.count)))
    else {
      throw RPCError(
        code: .unauthenticated, message: "a valid 'authorization: Bearer' key is required")
    }
    return try await next(request, context)
  }
}
