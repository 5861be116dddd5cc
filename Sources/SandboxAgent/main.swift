import AgentCore
import ArgumentParser
import Foundation
import Logging
import MemoryTuning

struct SandboxAgentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sandbox-agent",
    abstract:
      "Serve a folder over E2B's envd wire protocol (or Vercel Sandbox's, LangSmith's or CoreWeave's)."
  )

  @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
  var listen: String = "127.0.0.1:49983"

  @Option(help: "Folder served as the protocol's '/'.")
  var root: String = "/"

  @Option(help: "File holding the access token (else SANDBOX_AGENT_TOKEN).")
  var tokenFile: String?

  @Flag(help: "Allow a non-loopback listen address without a token.")
  var insecure = false

  @Option(
    help:
      "PEM certificate chain to serve HTTPS with (gRPC over TLS for coreweave); needs --tls-key.")
  var tlsCert: String?

  @Option(help: "PEM private key of --tls-cert.")
  var tlsKey: String?

  @Option(help: "trace, debug, info, notice, warning, error or critical.")
  var logLevel: String = "info"

  @Flag(help: "Behave as stock envd: the agent extension is switched off.")
  var envdCompat = false

  @Option(
    name: .customLong("protocol"),
    help:
      "Wire protocol: envd, vercel, langsmith or coreweave (with the last three the folder stands for the sandbox's '/')."
  )
  var wireProtocol: String = "envd"

  @Option(help: "With --protocol coreweave: the sandbox id the agent answers to.")
  var sandboxId: String = "local"

  @Option(
    help:
      "With --protocol coreweave: the largest file ReadFile/WriteFile move in one call, in bytes.")
  var coreweaveFileCap: Int = 32 << 20

  @Option(
    help:
      "Seconds a client has to send a request head, from the connection's start and from the first byte of each later request."
  )
  var requestHeadTimeout: Double = 10

  @Option(help: "Open connections at most; more wait in the listen backlog until one closes.")
  var maxConnections: Int = 512

  @Option(help: "Directory watchers one connection may hold.")
  var watchersPerConnection: Int = 16

  @Option(
    help:
      "Directory watchers in all (each takes an inotify instance; default: half the host's per-user limit, at most 64)."
  )
  var maxWatchers: Int?

  func run() async throws { try await serve() }

  func serve() async throws {
    do {
      let configuration = try makeConfiguration()
      if let refusal = configuration.startupRefusal { fail(refusal) }
      var logger = Logger(label: "sandbox-agent")
      logger.logLevel = configuration.logLevel
      try await runAgent(configuration: configuration, logger: logger) { host, port in
        let shownHost = host.contains(":") ? "[\(host)]" : host
        // An unbuffered write: tests wait for this exact line.
        let scheme = configuration.tls == nil ? "http" : "https"
        FileHandle.standardOutput.write(
          Data("sandbox-agent listening on \(scheme)://\(shownHost):\(port)\n".utf8))
      }
    } catch let error as AgentStartupError {
      fail(error.message)
    } catch let error as SystemError {
      fail("cannot serve root: \(error)")
    }
  }

  func makeConfiguration() throws(AgentStartupError) -> AgentConfiguration {
    guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
      throw AgentStartupError("unknown log level '\(logLevel)'")
    }
    let (host, port) = try Self.parseListen(listen)
    guard let chosen = AgentProtocol(rawValue: wireProtocol.lowercased()) else {
      throw AgentStartupError(
        "unknown protocol '\(wireProtocol)' (envd, vercel, langsmith or coreweave)")
    }
    if chosen != .envd && envdCompat {
      throw AgentStartupError("--envd-compat applies to --protocol envd only")
    }
    guard coreweaveFileCap > 0 else {
      throw AgentStartupError("--coreweave-file-cap must be positive")
    }
    guard requestHeadTimeout > 0, requestHeadTimeout.isFinite else {
      throw AgentStartupError("--request-head-timeout must be a positive number of seconds")
    }
    for (name, value) in [
      ("--max-connections", maxConnections), ("--watchers-per-connection", watchersPerConnection),
      ("--max-watchers", maxWatchers ?? 1),
    ] where value < 1 {
      throw AgentStartupError("\(name) must be at least 1")
    }
    var configuration = AgentConfiguration(
      host: host, port: port, root: root, accessToken: try readToken(), insecure: insecure,
      logLevel: level, envdCompat: envdCompat, wireProtocol: chosen, sandboxID: sandboxId,
      coreWeaveFileCap: coreweaveFileCap, tls: try loadTLS())
    configuration.requestHeadTimeout = .milliseconds(Int64(requestHeadTimeout * 1000))
    configuration.maxConnections = maxConnections
    configuration.watchersPerConnection = watchersPerConnection
    if let maxWatchers { configuration.maxWatchers = maxWatchers }
    return configuration
  }

  func loadTLS() throws(AgentStartupError) -> AgentTLS? {
    switch (tlsCert, tlsKey) {
    case (nil, nil): return nil
    case (let certificate?, let key?):
      do {
        return try AgentTLS(certificateFile: certificate, keyFile: key)
      } catch {
        throw AgentStartupError(error.description)
      }
    default: throw AgentStartupError("--tls-cert and --tls-key go together")
    }
  }

  func readToken() throws(AgentStartupError) -> String? {
    if let tokenFile {
      guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
        throw AgentStartupError("cannot read token file \(tokenFile)")
      }
      let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !token.isEmpty else { throw AgentStartupError("token file \(tokenFile) is empty") }
      return token
    }
    if let token = ProcessInfo.processInfo.environment["SANDBOX_AGENT_TOKEN"], !token.isEmpty {
      return token
    }
    return nil
  }

  /// `HOST:PORT`, `[V6]:PORT`.
  static func parseListen(_ value: String) throws(AgentStartupError) -> (String, Int) {
    guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
      (0...65535).contains(port)
    else { throw AgentStartupError("--listen must be HOST:PORT, got '\(value)'") }
    var host = String(value[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else {
      throw AgentStartupError("--listen must be HOST:PORT, got '\(value)'")
    }
    return (host, port)
  }
}

struct AgentStartupError: Error {
  var message: String
  init(_ message: String) { self.message = message }
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("sandbox-agent: \(message)\n".utf8))
  exit(1)
}

MemoryAllocator.keepLargeChunksForReuse()
LoggingSystem.bootstrap(StreamLogHandler.standardError)
// Parsed and run by hand: in a main.swift, `main()`/`run()` resolve to ArgumentParser's
// synchronous defaults.
do {
  let command = try SandboxAgentCommand.parse()
  try await command.serve()
} catch {
  SandboxAgentCommand.exit(withError: error)
}
