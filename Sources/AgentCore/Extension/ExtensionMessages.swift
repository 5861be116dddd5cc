import Foundation

/// Request and response messages of `sandboxagent.v1.Extension` (docs/agent-extension.md §4).
/// Requests decode leniently, protobuf-JSON style: camelCase or snake_case keys, integers as
/// numbers or strings, unknown fields ignored. Paths are validated by the handlers, so a bad
/// path is an errno rather than a decoding error.

/// `Stat`, `ListDir`, `Readlink`, `Unlink`, `Rmdir`.
struct ExtensionPathRequest: Decodable, Sendable, CallerCarrying {
  var path: RawPath?
  var caller: ExtensionCaller?

  init(path: RawPath?) {
    self.path = path
  }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    path = try container.rawPath("path")
    caller = try container.caller()
  }
}

/// A request that may name its caller (`"caller"`): the agent acts with that caller's
/// credentials when it can (`CallerCredentials`).
protocol CallerCarrying {
  var caller: ExtensionCaller? { get }
}

/// `Capabilities`, `Statfs`: no fields.
struct ExtensionEmptyRequest: Decodable, Sendable, CallerCarrying {
  var caller: ExtensionCaller?

  init(from decoder: any Decoder) throws {
    let container = try? decoder.container(keyedBy: ProtoKey.self)
    caller = try container?.caller()
  }
}

/// `Mkdir`, `Mknod`, `Create`, `Symlink`: a new entry, its mode and owner.
struct ExtensionCreateRequest: Decodable, Sendable, CallerCarrying {
  var path: RawPath?
  var mode: UInt32?
  var uid: UInt32?
  var gid: UInt32?
  var rdev: Int64?
  var exclusive: Bool?
  /// `Symlink`: the link text.
  var target: RawPath?
  var caller: ExtensionCaller?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    path = try container.rawPath("path")
    mode = try container.protoUInt32("mode")
    uid = try container.protoUInt32("uid")
    gid = try container.protoUInt32("gid")
    rdev = try container.protoInt64("rdev")
    exclusive = try container.proto(Bool.self, "exclusive")
    target = try container.rawPath("target")
    caller = try container.caller()
  }
}

/// `Link`, `Rename`.
struct ExtensionTwoPathRequest: Decodable, Sendable, CallerCarrying {
  var from: RawPath?
  var to: RawPath?
  var flags: UInt32?
  var caller: ExtensionCaller?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    from = try container.rawPath("from")
    to = try container.rawPath("to")
    flags = try container.protoUInt32("flags")
    caller = try container.caller()
  }
}

/// `Setattr`: every change optional.
struct ExtensionSetattrRequest: Decodable, Sendable, CallerCarrying {
  struct Time: Sendable, Equatable {
    var seconds: Int64
    var nanoseconds: UInt32
  }

  enum TimeChange: Sendable, Equatable {
    case omit, now
    case set(Time)
  }

  var path: RawPath?
  var mode: UInt32?
  var uid: UInt32?
  var gid: UInt32?
  var size: Int64?
  var atime: TimeChange
  var mtime: TimeChange
  var caller: ExtensionCaller?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    path = try container.rawPath("path")
    mode = try container.protoUInt32("mode")
    uid = try container.protoUInt32("uid")
    gid = try container.protoUInt32("gid")
    size = try container.protoInt64("size")
    atime = try Self.time(container, "atime")
    mtime = try Self.time(container, "mtime")
    caller = try container.caller()
  }

  private static func time(_ container: KeyedDecodingContainer<ProtoKey>, _ name: String) throws
    -> TimeChange
  {
    if try container.proto(Bool.self, name + "Now", name + "_now") == true { return .now }
    guard let seconds = try container.protoInt64(name) else { return .omit }
    let nanoseconds = try container.protoUInt32(name + "Nsec", name + "_nsec") ?? 0
    return .set(Time(seconds: seconds, nanoseconds: nanoseconds))
  }
}

/// `Fsync`.
struct ExtensionFsyncRequest: Decodable, Sendable, CallerCarrying {
  var path: RawPath?
  var dataOnly: Bool
  var caller: ExtensionCaller?

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    path = try container.rawPath("path")
    dataOnly = try container.proto(Bool.self, "dataOnly", "data_only") ?? false
    caller = try container.caller()
  }
}

struct ExtensionAttrResponse: Encodable, Sendable, ProtocolJSONWritable {
  var attr: ExtensionAttr

  func write(to json: inout ProtocolJSONWriter) { json.object("attr", attr) }
}

/// The answer of a method that changes names: the entry's attr where one remains, and the
/// directories that changed, so a client patches its caches without another round trip.
struct ExtensionChangeResponse: Encodable, Sendable, ProtocolJSONWritable {
  var attr: ExtensionAttr?
  /// The directory that held (or now holds) the entry, after the change.
  var parent: ExtensionAttr?
  /// Rename only: the destination's directory, when it is another one.
  var toParent: ExtensionAttr?

  var estimatedJSONSize: Int { 1200 }

  func write(to json: inout ProtocolJSONWriter) {
    json.raw("{")
    var first = true
    for (key, value) in [("attr", attr), ("parent", parent), ("toParent", toParent)]
      as [(StaticString, ExtensionAttr?)]
    {
      guard let value else { continue }
      if !first { json.raw(",") }
      first = false
      json.key(key)
      value.write(to: &json)
    }
    json.raw("}")
  }
}

/// `Counters`: what the agent has served since it started, for benchmarks and tests.
struct ExtensionCountersResponse: Encodable, Sendable {
  var requests: String
  var bytesIn: String
}

struct ExtensionListDirResponse: Encodable, Sendable, ProtocolJSONWritable {
  var attr: ExtensionAttr
  var entries: [ExtensionAttr]

  /// About 330 bytes an entry with a short name: one allocation instead of repeated growth.
  var estimatedJSONSize: Int { 400 * (entries.count + 1) }

  func write(to json: inout ProtocolJSONWriter) {
    json.raw("{")
    json.key("attr")
    attr.write(to: &json)
    json.raw(",")
    json.key("entries")
    json.array(entries)
    json.raw("}")
  }
}

struct ExtensionReadlinkResponse: Encodable, Sendable {
  var target: [UInt8]

  private enum Key: String, CodingKey { case target, targetBytes }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: Key.self)
    if let text = String(validating: target, as: UTF8.self) {
      try container.encode(text, forKey: .target)
    } else {
      try container.encode(Data(target).base64EncodedString(), forKey: .targetBytes)
    }
  }
}

struct ExtensionStatfsResponse: Encodable, Sendable {
  var bsize: UInt32
  var frsize: UInt32
  var blocks: String
  var bfree: String
  var bavail: String
  var files: String
  var ffree: String
  var favail: String
  var namemax: UInt32
  var flag: String
}

struct ExtensionCapabilitiesResponse: Encodable, Sendable {
  var version: Int
  var methods: [String]
  var write: String
  /// Whether the agent makes changes with a request's `caller` credentials (it runs as root).
  var actsAsCaller: Bool
}

extension KeyedDecodingContainer where Key == ProtoKey {
  /// `name` as a string, or `nameBytes` as standard base64.
  func rawPath(_ name: String) throws -> RawPath? {
    if let text = try proto(String.self, name) { return RawPath(bytes: Array(text.utf8)) }
    guard let encoded = try proto(String.self, name + "Bytes", name + "_bytes") else { return nil }
    guard let data = Data(base64Encoded: encoded) else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: codingPath, debugDescription: "\(name)Bytes is not valid base64"))
    }
    return RawPath(bytes: Array(data))
  }

  /// A 64-bit signed integer: a JSON number or a decimal string.
  func protoInt64(_ names: String...) throws -> Int64? {
    for name in names {
      let key = ProtoKey(stringValue: name)
      guard contains(key), try !decodeNil(forKey: key) else { continue }
      if let number = try? decode(Int64.self, forKey: key) { return number }
      if let text = try? decode(String.self, forKey: key), let number = Int64(text) {
        return number
      }
      throw DecodingError.typeMismatch(
        Int64.self,
        .init(codingPath: codingPath + [key], debugDescription: "invalid value for int64 field"))
    }
    return nil
  }
}
