/// Request and response messages of `filesystem.Filesystem` (protocol doc §6.2) and `/metrics`.
struct PathRequest: Encodable { var path: String }

struct ListDirRequest: Encodable {
  var path: String
  var depth: UInt32
}

struct MoveRequest: Encodable {
  var source: String
  var destination: String
}

struct EntryResponse: Decodable { var entry: EntryInfo? }

struct ListDirResponse: Decodable { var entries: [EntryInfo]? }

struct EmptyResponse: Decodable {}

struct MetricsResponse: Decodable {
  var diskTotal: JSONInt64?
  var diskUsed: JSONInt64?

  enum CodingKeys: String, CodingKey {
    case diskTotal = "disk_total"
    case diskUsed = "disk_used"
  }
}
