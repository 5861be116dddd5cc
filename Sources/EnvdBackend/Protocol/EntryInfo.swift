import Backend

/// envd's EntryInfo as protobuf JSON (protocol doc §6.1). Zero values are omitted, so every
/// field is optional; int64 `size` is a JSON string.
struct EntryInfo: Decodable, Sendable {
  var name: String?
  var type: String?
  var path: String?
  var size: JSONInt64?
  var mode: UInt32?
  var permissions: String?
  var owner: String?
  var group: String?
  var modifiedTime: String?
  var symlinkTarget: String?

  /// The base name, from `name`, else from `path`.
  var baseName: String {
    if let name, !name.isEmpty { return name }
    return RemotePath.name(of: path ?? "")
  }

  /// Whether a path through this entry reaches a directory: `type` describes a symlink's target.
  var leadsToDirectory: Bool { type == "FILE_TYPE_DIRECTORY" }

  var attributes: RemoteAttributes {
    let parsed = permissions.flatMap(GoFileMode.init(parsing:))
    var fileType = parsed?.type ?? (type == "FILE_TYPE_DIRECTORY" ? .directory : .regular)
    if type == "FILE_TYPE_SYMLINK" || symlinkTarget != nil { fileType = .symlink }
    let bits = parsed?.permissions ?? (mode ?? 0) & 0o777
    let time = modifiedTime.flatMap(RFC3339.parse) ?? RemoteTime(seconds: 0)
    return RemoteAttributes(
      type: fileType, size: size?.value ?? 0, permissions: bits, modificationTime: time,
      owner: owner, group: group,
      // envd's symlinkTarget is the resolved absolute path, not the link text (§6.1): not exposed.
      symlinkTarget: nil)
  }
}

/// An int64 the way protobuf JSON writes it (a string), also accepting a bare number.
struct JSONInt64: Decodable, Sendable, Equatable {
  var value: UInt64

  init(_ value: UInt64) { self.value = value }

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if let text = try? container.decode(String.self) {
      guard let number = Int64(text) else {
        throw DecodingError.dataCorruptedError(
          in: container, debugDescription: "not an int64: \(text)")
      }
      value = UInt64(max(0, number))
    } else {
      value = UInt64(max(0, try container.decode(Int64.self)))
    }
  }
}

/// Go's `FileMode.String()`: type/flag letters from "dalTLDpSugct?", or "-", then "rwxrwxrwx".
struct GoFileMode: Equatable {
  var type: RemoteFileType
  /// Permission bits including setuid (u), setgid (g) and sticky (t).
  var permissions: UInt32

  init?(parsing text: String) {
    let bytes = Array(text.utf8)
    guard bytes.count >= 10 else { return nil }
    let letters = bytes[..<(bytes.count - 9)]
    let rwx = bytes[(bytes.count - 9)...]
    var bits: UInt32 = 0
    for (index, byte) in rwx.enumerated() where byte != UInt8(ascii: "-") {
      bits |= 1 << UInt32(8 - index)
    }
    func has(_ letter: Character) -> Bool { letters.contains(letter.asciiValue!) }
    if has("u") { bits |= 0o4000 }
    if has("g") { bits |= 0o2000 }
    if has("t") { bits |= 0o1000 }
    if has("d") {
      type = .directory
    } else if has("L") {
      type = .symlink
    } else if has("D") {
      type = has("c") ? .characterDevice : .blockDevice
    } else if has("p") {
      type = .fifo
    } else if has("S") {
      type = .socket
    } else {
      type = .regular
    }
    permissions = bits
  }
}
