/// Request and response messages of `filesystem.Filesystem` (protojson field names).
/// Missing fields decode as proto3 zero values.

struct PathRequest: Decodable, Sendable {
  var path: String

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: FieldKey.self)
    path = try container.decodeIfPresent(String.self, forKey: FieldKey("path")) ?? ""
  }
}

struct ListDirRequest: Decodable, Sendable {
  var path: String
  var depth: UInt32

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: FieldKey.self)
    path = try container.decodeIfPresent(String.self, forKey: FieldKey("path")) ?? ""
    depth = try container.decodeProtoUInt32(FieldKey("depth")) ?? 0
  }
}

struct MoveRequest: Decodable, Sendable {
  var source: String
  var destination: String

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: FieldKey.self)
    source = try container.decodeIfPresent(String.self, forKey: FieldKey("source")) ?? ""
    destination = try container.decodeIfPresent(String.self, forKey: FieldKey("destination")) ?? ""
  }
}

struct EntryResponse: Encodable, Sendable, ProtocolJSONWritable {
  var entry: EntryInfo

  func write(to json: inout ProtocolJSONWriter) { json.object("entry", entry) }
}

struct EntriesResponse: Encodable, Sendable, ProtocolJSONWritable {
  var entries: [EntryInfo]

  var estimatedJSONSize: Int { 300 * entries.count + 16 }

  func write(to json: inout ProtocolJSONWriter) {
    guard !entries.isEmpty else { return json.raw("{}") }
    json.raw("{")
    json.key("entries")
    json.array(entries)
    json.raw("}")
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: FieldKey.self)
    // protojson leaves out empty repeated fields.
    if !entries.isEmpty { try container.encode(entries, forKey: FieldKey("entries")) }
  }
}

struct EmptyResponse: Encodable, Sendable {}

struct FieldKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(_ name: String) { stringValue = name }
  init?(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer where Key == FieldKey {
  /// protojson accepts 32-bit integers as numbers or decimal strings.
  func decodeProtoUInt32(_ key: FieldKey) throws -> UInt32? {
    guard contains(key), try !decodeNil(forKey: key) else { return nil }
    if let number = try? decode(UInt32.self, forKey: key) { return number }
    if let text = try? decode(String.self, forKey: key), let number = UInt32(text) { return number }
    throw DecodingError.typeMismatch(
      UInt32.self, .init(codingPath: codingPath + [key], debugDescription: "not a uint32"))
  }
}
