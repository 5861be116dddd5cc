import Foundation
import Glibc
import Hummingbird
import Logging

/// `process.Process`: `Start` and `Connect` (server streaming), `StreamInput` (client
/// streaming), and the unary `SendSignal`, `SendInput`, `CloseStdin`, `Update` and `List`.
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
      let (process, subscription) = try await services.blocking {
        try launcher.launch(message, user: user, table: processes)
      }
      // The stream's own deadline kills first and ends with deadline_exceeded; this backstop
      // covers a stream aborted before then.
      if let timeout = options.timeout { process.killAfter(timeout + .milliseconds(250)) }
      // The arguments' tail: a batch script's operations follow its fixed body.
      let arguments = (message.process?.args ?? []).joined(separator: " ").suffix(300)
      context.logger.debug(
        "process \(process.pid) started: \(message.process?.cmd ?? "") …\(arguments)")
      try await streamProcess(
        process, subscription, options: options, killAtDeadline: true, shutdown: shutdown,
        to: &stream)
    }
  }

  // envd's handleConnect: the start event (the pid), then the output from now on, then the end.
  // The stream's deadline ends the stream, not the process.
  router.post("/process.Process/Connect") { request, context in
    await ConnectStreamingCall.respond(to: request, context: context) {
      payload, stream, shutdown in
      _ = try services.rpcUser(for: request)
      let options = try StreamCallOptions(headers: request.headers)
      let message = try StreamRequestReader.decode(ConnectRequest.self, from: payload)
      let process: ManagedProcess
      do throws(ConnectError) {
        process = try processes.find(message.process)
      } catch {
        // Ended less than 30 s ago: the start and the retained end, so the caller learns the exit.
        guard let retained = processes.retainedEnd(message.process) else { throw error }
        try await stream.send(StartResponse(event: .start(pid: retained.pid)))
        try await stream.send(StartResponse(event: .end(retained.exit)))
        return
      }
      switch process.subscribe() {
      case .live(let subscription):
        try await streamProcess(
          process, subscription, options: options, killAtDeadline: false, shutdown: shutdown,
          to: &stream)
      case .ended(let exit):
        try await stream.send(StartResponse(event: .start(pid: UInt32(bitPattern: process.pid))))
        try await stream.send(StartResponse(event: .end(exit)))
      }
    }
  }

  // envd's streamInputHandler: a start event picks the process, data events are written to it
  // in order, keepalives are ignored; the first failure ends the call.
  router.post("/process.Process/StreamInput") { request, _ in
    await ConnectClientStreamCall.respond(to: request, reply: EmptyMessage()) {
      messages throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      var target: ManagedProcess?
      while let payload = try await messages.next() {
        switch try StreamRequestReader.decode(StreamInputRequest.self, from: payload) {
        case .start(let selector):
          target = try processes.find(selector)
        case .data(let input):
          // envd dereferences a nil process here and the connection breaks; an error says more.
          guard let target else {
            throw ConnectError(.failedPrecondition, "data event before the start event")
          }
          try await deliverInput(input, to: target)
        case .keepalive:
          break
        case .none:
          throw ConnectError(.unimplemented, "invalid event type <nil>")
        }
      }
    }
  }

  router.post("/process.Process/Update") { request, _ in
    await ConnectUnaryCall.respond(to: request, UpdateRequest.self) {
      message throws(ConnectError) in
      _ = try services.rpcUser(for: request)
      let process = try processes.find(message.process)
      if let size = message.pty, let failure = await process.resizePTY(size) {
        throw ConnectError(.internal, "error resizing tty: \(failure)")
      }
      return EmptyMessage()
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
      default: throw ConnectError(.invalidArgument, "invalid signal: \(message.signal)")
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
      try await deliverInput(message.input, to: process)
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

/// envd's handleInput: stdin or PTY bytes, each only to a process that has that kind of input.
private func deliverInput(_ input: ProcessInput, to process: ManagedProcess)
  async throws(ConnectError)
{
  switch input {
  case .stdin(let data):
    if let failure = await process.writeStdin(data) {
      throw ConnectError(.internal, "error writing to stdin: \(failure)")
    }
  case .pty(let data):
    if let failure = await process.writePTY(data) {
      throw ConnectError(.internal, "error writing to tty: \(failure)")
    }
  case .none:
    throw ConnectError(.invalidArgument, "invalid input type <nil>")
  }
}

/// The response stream of Start and Connect: the start event, output chunks and keepalives, then
/// the end event. If the client goes away the process keeps running (its output is dropped). At
/// the deadline (`Connect-Timeout-Ms`) the call ends with `deadline_exceeded`, and a process
/// started by this call is killed; when the agent shuts down the call ends with `unavailable`.
private func streamProcess(
  _ process: ManagedProcess, _ subscription: OutputSubscription, options: StreamCallOptions,
  killAtDeadline: Bool, shutdown: ShutdownNotice, to stream: inout ConnectStreamWriter
) async throws {
  let ticker = StreamTicker(
    source: subscription.events, keepalive: options.keepaliveInterval,
    deadline: options.timeout, shutdown: shutdown)
  defer {
    ticker.stop()
    subscription.cancel()
  }
  try await stream.send(StartResponse(event: .start(pid: UInt32(bitPattern: process.pid))))
  for await tick in ticker.ticks {
    switch tick {
    case .element(let event):
      try await stream.send(StartResponse(event: event))
      if case .end = event { return }
      subscription.gate.leave()
    case .keepalive:
      try await stream.send(StartResponse(event: .keepalive))
    case .deadline:
      if killAtDeadline { _ = process.signal(SIGKILL) }
      throw ConnectError(.deadlineExceeded, "context deadline exceeded")
    case .shutdown:
      // The process outlives the agent, as it outlives an aborted stream.
      throw ConnectError(.unavailable, "sandbox-agent is shutting down")
    }
  }
  // The ticker ended without an end event: the call was cancelled.
  throw CancellationError()
}
