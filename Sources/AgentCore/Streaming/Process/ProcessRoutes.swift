import Foundation
import Glibc
import Hummingbird
import Logging

/// `process.Process`: `Start` (server streaming), and the unary `SendSignal`, `SendInput`,
/// `CloseStdin` and `List`. `Connect`, `Update` and `StreamInput` are left to the fallback
/// (`unimplemented`).
func registerProcessRoutes(
  on router: Router<AgentRequestContext>, services: AgentServices, processes: ProcessTable
) {
  let launcher = ProcessLauncher(jail: services.jail)

  router.post("/process.Process/Start") { request, context in
    await ConnectStreamingCall.respond(to: request, context: context) {
      payload, stream, shutdown in
      let user = try services.rpcUser(for: request)
      let options = try StreamCallOptions(headers: request.headers)
      let message = try StreamRequestReader.decode(StartRequest.self, from: payload)
      // Jail lookups, access() and posix_spawn block: keep them off the cooperative pool.
      let process = try await services.blocking {
        try launcher.launch(message, user: user, table: processes)
      }
      // The stream's own deadline kills first and ends with deadline_exceeded; this backstop
      // covers a stream aborted before then.
      if let timeout = options.timeout { process.killAfter(timeout + .milliseconds(250)) }
      context.logger.debug("process \(process.pid) started: \(message.process?.cmd ?? "")")
      try await streamProcess(process, options: options, shutdown: shutdown, to: &stream)
    }
  }

  router.post("/process.Process/SendSignal") { request, _ in
    await ConnectUnaryCall.respond(to: request, SendSignalRequest.self) {
      message throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      let process = try processes.find(message.process)
      let signal: Int32
      switch message.signal {
      case "SIGNAL_SIGKILL": signal = SIGKILL
      case "SIGNAL_SIGTERM": signal = SIGTERM
      default: throw ConnectError(.unimplemented, "invalid signal: \(message.signal)")
      }
      if let failure = process.signal(signal) {
        throw ConnectError(.internal, "error sending signal: \(failure)")
      }
      return EmptyMessage()
    }
  }

  router.post("/process.Process/SendInput") { request, _ in
    await ConnectUnaryCall.respond(to: request, SendInputRequest.self) {
      message throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      let process = try processes.find(message.process)
      switch message.input {
      case .stdin(let data):
        if let failure = await process.writeStdin(data) {
          throw ConnectError(.internal, "error writing to stdin: \(failure)")
        }
      case .pty:
        throw ConnectError(
          .internal,
          "error writing to tty: tty not assigned to process — input should be written to the stdin, not the tty"
        )
      case .none:
        throw ConnectError(.unimplemented, "invalid input type <nil>")
      }
      return EmptyMessage()
    }
  }

  router.post("/process.Process/CloseStdin") { request, _ in
    await ConnectUnaryCall.respond(to: request, CloseStdinRequest.self) {
      message throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      let process = try processes.find(message.process)
      if let failure = await process.closeStdin() {
        throw ConnectError(.unknown, "error closing stdin: \(failure)")
      }
      return EmptyMessage()
    }
  }

  router.post("/process.Process/List") { request, _ in
    await ConnectUnaryCall.respond(to: request, EmptyMessage.self) { _ throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      return ListResponse(
        processes: processes.all.map {
          .init(config: $0.config, pid: UInt32(bitPattern: $0.pid), tag: $0.tag)
        })
    }
  }
}

/// Start's response stream: the start event, output chunks and keepalives, then the end event.
/// If the client goes away the process keeps running (its output is dropped); at the deadline
/// (`Connect-Timeout-Ms`) it is killed and the call ends with `deadline_exceeded`; when the agent
/// shuts down the call ends with `unavailable`.
private func streamProcess(
  _ process: ManagedProcess, options: StreamCallOptions, shutdown: ShutdownNotice,
  to stream: inout ConnectStreamWriter
) async throws {
  let ticker = StreamTicker(
    source: process.events, keepalive: options.keepaliveInterval, deadline: options.timeout,
    shutdown: shutdown)
  defer {
    ticker.stop()
    process.gate.detach()
  }
  try await stream.send(StartResponse(event: .start(pid: UInt32(bitPattern: process.pid))))
  for await tick in ticker.ticks {
    switch tick {
    case .element(let event):
      try await stream.send(StartResponse(event: event))
      if case .end = event { return }
      process.gate.leave()
    case .keepalive:
      try await stream.send(StartResponse(event: .keepalive))
    case .deadline:
      _ = process.signal(SIGKILL)
      throw ConnectError(.deadlineExceeded, "context deadline exceeded")
    case .shutdown:
      // The process outlives the agent, as it outlives an aborted stream.
      throw ConnectError(.unavailable, "sandbox-agent is shutting down")
    }
  }
  // The ticker ended without an end event: the call was cancelled.
  throw CancellationError()
}
