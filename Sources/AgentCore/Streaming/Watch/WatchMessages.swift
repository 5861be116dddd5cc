import Foundation

/// `WatchDirRequest`.
struct WatchDirRequest: Decodable, Sendable {
  var path: String
  var recursive: Bool
  var includeEntry: Bool
  var allowNetworkMounts: Bool

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: ProtoKey.self)
    path = try container.proto(String.self, "path") ?? ""
    recursive = try container.proto(Bool.self, "recursive") ?? false
    includeEntry = try container.proto(Bool.self, "includeEntry", "include_entry") ?? false
    allowNetworkMounts =
      try container.proto(Bool.self, "allowNetworkMounts", "allow_network_mounts") ?? false
  }
}

/// One `FilesystemEvent`: `name` relative to the watched directory, `type` an EventType name.
struct FilesystemEvent: Sendable, Equatable {
  var name: String
  var type: String
  /// Protocol path of the entry, for `includeEntry`.
  var path: String
}

/// `WatchDirResponse`, a oneof of start, filesystem and keepalive.
enum WatchDirResponse: Encodable {
  case start
  /// `entry` is envd's EntryInfo, for `includeEntry`.
  case filesystem(name: String, type: String, entry: (any Encodable)?)
  case keepalive

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: ProtoKey.self)
    switch self {
    case .start:
      try container.encode(EmptyMessage(), forKey: ProtoKey(stringValue: "start"))
    case .filesystem(let name, let type, let entry):
      var body = container.nestedContainer(
        keyedBy: ProtoKey.self, forKey: ProtoKey(stringValue: "filesystem"))
      try body.encode(name, forKey: ProtoKey(stringValue: "name"))
      try body.encode(type, forKey: ProtoKey(stringValue: "type"))
      if let entry { try body.encode(entry, forKey: ProtoKey(stringValue: "entry")) }
    case .keepalive:
      try container.encode(EmptyMessage(), forKey: ProtoKey(stringValue: "keepalive"))
    }
  }
}
