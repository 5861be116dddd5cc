import Foundation

// Messages of `process.Process` (envd's process.proto) in protobuf JSON form.

/// `ProcessConfig`: what to run.
struct ProcessConfig: Decodable, Encodable, Sendable {
  var cmd: String = ""
  var args: [String] = []
  var envs: [String: String] = [:]
  var cwd: String?

  init() {}

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    cmd = try container.proto(String.self, "cmd") ?? ""
    args = try container.proto([String].self, "args") ?? []
    envs = try container.proto([String: String].self, "envs") ?? [:]
    cwd = try container.proto(String.self, "cwd")
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: ProtoKey.self)
    try container.encode(cmd, forKey: ProtoKey(stringValue: "cmd"))
    if !args.isEmpty { try container.encode(args, forKey: ProtoKey(stringValue: "args")) }
    if !envs.isEmpty { try container.encode(envs, forKey: ProtoKey(stringValue: "envs")) }
    if let cwd { try container.encode(cwd, forKey: ProtoKey(stringValue: "cwd")) }
  }
}

/// `StartRequest`.
struct StartRequest: Decodable, Sendable {
  var process: ProcessConfig?
  /// Present when the process gets a pseudo-terminal.
  var pty: PTYSize?
  var tag: String?
  /// Unset means a stdin pipe (envd's old behaviour); false means /dev/null. Ignored with a PTY.
  var stdin: Bool?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    process = try container.proto(ProcessConfig.self, "process")
    pty = try container.proto(PTYMessage.self, "pty")?.size
    tag = try container.proto(String.self, "tag")
    stdin = try container.proto(Bool.self, "stdin")
  }
}

/// `PTY.Size`: columns and rows (Go's `pty.Winsize` takes them as uint16).
struct PTYSize: Decodable, Sendable, Equatable {
  var cols: UInt32 = 0
  var rows: UInt32 = 0

  init(cols: UInt32, rows: UInt32) {
    self.cols = cols
    self.rows = rows
  }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    cols = try container.protoUInt32("cols") ?? 0
    rows = try container.protoUInt32("rows") ?? 0
  }
}

/// `PTY`: `{"size":{"cols":80,"rows":24}}`; a missing size is 0×0, as in protobuf.
struct PTYMessage: Decodable, Sendable {
  var size: PTYSize

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    size = try container.proto(PTYSize.self, "size") ?? PTYSize(cols: 0, rows: 0)
  }
}

/// `ConnectRequest`: which running process to attach to.
struct ConnectRequest: Decodable, Sendable {
  var process: ProcessSelector

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    process = try container.proto(ProcessSelector.self, "process") ?? .none
  }
}

/// `UpdateRequest`: a new PTY size, or nothing.
struct UpdateRequest: Decodable, Sendable {
  var process: ProcessSelector
  var pty: PTYSize?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    process = try container.proto(ProcessSelector.self, "process") ?? .none
    pty = try container.proto(PTYMessage.self, "pty")?.size
  }
}

/// `StreamInputRequest`, one message of the client stream: a oneof of start (the selector),
/// data (a `ProcessInput`) and keepalive.
enum StreamInputRequest: Decodable, Sendable {
  case start(ProcessSelector)
  case data(ProcessInput)
  case keepalive
  case none

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    if let start = try container.proto(StartEvent.self, "start") {
      self = .start(start.process)
    } else if let data = try container.proto(DataEvent.self, "data") {
      self = .data(data.input)
    } else if try container.proto(EmptyMessage.self, "keepalive") != nil {
      self = .keepalive
    } else {
      self = .none
    }
  }

  private struct StartEvent: Decodable {
    var process: ProcessSelector
    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: ProtoKey.self)
      process = try container.proto(ProcessSelector.self, "process") ?? .none
    }
  }

  private struct DataEvent: Decodable {
    var input: ProcessInput
    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: ProtoKey.self)
      input = try container.proto(ProcessInput.self, "input") ?? .none
    }
  }
}

/// `ProcessSelector`: `{"pid":N}` or `{"tag":"…"}`.
enum ProcessSelector: Decodable, Sendable {
  case pid(UInt32)
  case tag(String)
  case none

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    if let pid = try container.protoUInt32("pid") {
      self = .pid(pid)
    } else if let tag = try container.proto(String.self, "tag") {
      self = .tag(tag)
    } else {
      self = .none
    }
  }
}

/// `SendSignalRequest`.
struct SendSignalRequest: Decodable, Sendable {
  var process: ProcessSelector
  /// Enum name, e.g. `SIGNAL_SIGKILL`.
  var signal: String

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    process = try container.proto(ProcessSelector.self, "process") ?? .none
    signal =
      try container.protoEnum(
        ["signal"],
        numbers: [0: "SIGNAL_UNSPECIFIED", 9: "SIGNAL_SIGKILL", 15: "SIGNAL_SIGTERM"])
      ?? "SIGNAL_UNSPECIFIED"
  }
}

/// `ProcessInput`: `{"stdin":"<base64>"}` or `{"pty":"<base64>"}`.
enum ProcessInput: Decodable, Sendable {
  case stdin(Data)
  case pty(Data)
  case none

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    if let text = try container.proto(String.self, "stdin") {
      self = .stdin(try Self.bytes(text, in: container))
    } else if let text = try container.proto(String.self, "pty") {
      self = .pty(try Self.bytes(text, in: container))
    } else {
      self = .none
    }
  }

  /// protobuf `bytes`: standard or URL-safe base64, padding optional.
  static func bytes(_ text: String, in container: KeyedDecodingContainer<ProtoKey>) throws -> Data {
    var normalized = text.replacingOccurrences(of: "-", with: "+")
      .replacingOccurrences(of: "_", with: "/")
    normalized += String(repeating: "=", count: (4 - normalized.count % 4) % 4)
    guard let data = Data(base64Encoded: normalized) else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: container.codingPath, debugDescription: "invalid base64 in bytes field"))
    }
    return data
  }
}

/// `SendInputRequest`: `{"process":…,"input":{"stdin":"<base64>"}}` (or `pty`).
struct SendInputRequest: Decodable, Sendable {
  var process: ProcessSelector
  var input: ProcessInput

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    process = try container.proto(ProcessSelector.self, "process") ?? .none
    input = try container.proto(ProcessInput.self, "input") ?? .none
  }
}

/// `CloseStdinRequest`.
struct CloseStdinRequest: Decodable, Sendable {
  var process: ProcessSelector

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    process = try container.proto(ProcessSelector.self, "process") ?? .none
  }
}

/// An empty message: `{}` in and out.
struct EmptyMessage: Codable, Sendable {}

/// `ListResponse`: `{"processes":[{"config":…,"pid":N,"tag":…}]}`.
struct ListResponse: Encodable, Sendable {
  struct Info: Encodable, Sendable {
    var config: ProcessConfig
    var pid: UInt32
    var tag: String?
  }
  var processes: [Info]

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: ProtoKey.self)
    if !processes.isEmpty {
      try container.encode(processes, forKey: ProtoKey(stringValue: "processes"))
    }
  }
}

/// `StartResponse` and `ConnectResponse`: `{"event":ProcessEvent}`.
struct StartResponse: Encodable, Sendable {
  var event: ProcessEvent
}

/// `ProcessEvent`, a oneof of start, data, end and keepalive.
enum ProcessEvent: Encodable, Sendable {
  case start(pid: UInt32)
  case stdout(Data)
  case stderr(Data)
  case pty(Data)
  case end(ProcessExit)
  case keepalive

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: ProtoKey.self)
    func key(_ name: String) -> ProtoKey { ProtoKey(stringValue: name) }
    switch self {
    case .start(let pid):
      try container.encode(["pid": pid], forKey: key("start"))
    case .stdout(let bytes):
      try container.encode(["stdout": bytes.base64EncodedString()], forKey: key("data"))
    case .stderr(let bytes):
      try container.encode(["stderr": bytes.base64EncodedString()], forKey: key("data"))
    case .pty(let bytes):
      try container.encode(["pty": bytes.base64EncodedString()], forKey: key("data"))
    case .end(let exit):
      try container.encode(exit, forKey: key("end"))
    case .keepalive:
      try container.encode(EmptyMessage(), forKey: key("keepalive"))
    }
  }
}

/// `ProcessEvent.EndEvent`, filled the way Go's `os.ProcessState` reports a wait status.
struct ProcessExit: Encodable, Sendable, Equatable {
  /// -1 when killed by a signal (Go's `ExitCode()`); omitted when 0.
  var exitCode: Int32
  var exited: Bool
  /// `exit status N` or `signal: killed`.
  var status: String
  /// The same text as `status` when the process failed; nil on success.
  var error: String?

  /// Decodes a raw `waitpid` status.
  init(waitStatus: Int32) {
    let signal = waitStatus & 0x7f
    if signal == 0 {
      let code = (waitStatus >> 8) & 0xff
      exitCode = code
      exited = true
      status = "exit status \(code)"
    } else {
      exitCode = -1
      exited = false
      status = "signal: " + Self.signalName(signal)
      if waitStatus & 0x80 != 0 { status += " (core dumped)" }
    }
    error = exitCode == 0 ? nil : status
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: ProtoKey.self)
    if exitCode != 0 { try container.encode(exitCode, forKey: ProtoKey(stringValue: "exitCode")) }
    if exited { try container.encode(true, forKey: ProtoKey(stringValue: "exited")) }
    try container.encode(status, forKey: ProtoKey(stringValue: "status"))
    if let error { try container.encode(error, forKey: ProtoKey(stringValue: "error")) }
  }

  /// Go's `syscall.Signal.String()` texts on Linux.
  static func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
      1: "hangup", 2: "interrupt", 3: "quit", 4: "illegal instruction",
      5: "trace/breakpoint trap", 6: "aborted", 7: "bus error", 8: "floating point exception",
      9: "killed", 10: "user defined signal 1", 11: "segmentation fault",
      12: "user defined signal 2", 13: "broken pipe", 14: "alarm clock", 15: "terminated",
      16: "stack fault", 17: "child exited", 18: "continued", 19: "stopped (signal)",
      20: "stopped", 21: "stopped (tty input)", 22: "stopped (tty output)",
      23: "urgent I/O condition", 24: "CPU time limit exceeded", 25: "file size limit exceeded",
      26: "virtual timer expired", 27: "profiling timer expired", 28: "window changed",
      29: "I/O possible", 30: "power failure", 31: "bad system call",
    ]
    return names[signal] ?? "signal \(signal)"
  }
}
