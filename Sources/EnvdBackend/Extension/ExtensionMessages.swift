import Backend

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// Messages of the agent extension `sandboxagent.v1.Extension` (docs/agent-extension.md §4).
/// 64-bit integers travel as JSON strings, 32-bit ones as numbers; nil fields are left out.

struct ExtensionCapabilities: Decodable {
  var version: Int?
  var methods: [String]?
  var write: String?
  var actsAsCaller: Bool?
}

extension CallerIdentity {
  /// `{"uid":N,"gid":N,"groups":[N,…]}`
  var json: [UInt8] {
    var json = JSONObjectWriter()
    json.add("uid", uid)
    json.add("gid", gid)
    json.addRaw("groups", Array(("[" + groups.map(String.init).joined(separator: ",") + "]").utf8))
    return json.finished
  }

  /// The `Sandbox-Agent-Caller` header's value: `uid=N;gid=N;groups=N,N`.
  var headerValue: String {
    "uid=\(uid);gid=\(gid);groups=" + groups.map(String.init).joined(separator: ",")
  }
}

/// A request with the caller it is made as (`"caller"`), added to its own fields.
struct ExtensionWithCaller: Encodable, JSONObjectEncodable {
  var message: any JSONObjectEncodable
  var caller: CallerIdentity

  func write(to json: inout JSONObjectWriter) {
    message.write(to: &json)
    json.addRaw("caller", caller.json)
  }

  func encode(to encoder: any Encoder) throws {
    throw EncodingError.invalidValue(
      self, .init(codingPath: [], debugDescription: "written by JSONObjectWriter"))
  }
}

struct ExtensionEmpty: Codable, JSONObjectEncodable {
  func write(to json: inout JSONObjectWriter) {}
}

struct ExtensionPath: Encodable, JSONObjectEncodable {
  var path: String

  func write(to json: inout JSONObjectWriter) { json.add("path", path) }
}

struct ExtensionCreate: Encodable, JSONObjectEncodable {
  var path: String
  var mode: UInt32
  var exclusive: Bool? = nil
  var rdev: String? = nil
  var target: String? = nil

  func write(to json: inout JSONObjectWriter) {
    json.add("path", path)
    json.add("mode", mode)
    json.add("exclusive", exclusive)
    json.add("rdev", rdev)
    json.add("target", target)
  }
}

struct ExtensionTwoPaths: Encodable, JSONObjectEncodable {
  var from: String
  var to: String
  var flags: UInt32? = nil

  func write(to json: inout JSONObjectWriter) {
    json.add("from", from)
    json.add("to", to)
    json.add("flags", flags)
  }
}

struct ExtensionFsync: Encodable, JSONObjectEncodable {
  var path: String
  var dataOnly: Bool

  func write(to json: inout JSONObjectWriter) {
    json.add("path", path)
    json.add("dataOnly", dataOnly)
  }
}

struct ExtensionSetattr: Encodable, JSONObjectEncodable {
  var path: String
  var mode: UInt32?
  var uid: UInt32?
  var gid: UInt32?
  var size: String?
  var atime: String?
  var atimeNsec: UInt32?
  var atimeNow: Bool?
  var mtime: String?
  var mtimeNsec: UInt32?
  var mtimeNow: Bool?

  init(path: String, changes: RemoteAttributeChanges) {
    self.path = path
    mode = changes.mode.map { $0 & 0o7777 }
    uid = changes.uid
    gid = changes.gid
    size = changes.size.map(String.init)
    switch changes.accessTime {
    case .now: atimeNow = true
    case .set(let time):
      atime = String(time.seconds)
      atimeNsec = UInt32(clamping: time.nanoseconds)
    case nil: break
    }
    switch changes.modificationTime {
    case .now: mtimeNow = true
    case .set(let time):
      mtime = String(time.seconds)
      mtimeNsec = UInt32(clamping: time.nanoseconds)
    case nil: break
    }
  }

  func write(to json: inout JSONObjectWriter) {
    json.add("path", path)
    json.add("mode", mode)
    json.add("uid", uid)
    json.add("gid", gid)
    json.add("size", size)
    json.add("atime", atime)
    json.add("atimeNsec", atimeNsec)
    json.add("atimeNow", atimeNow)
    json.add("mtime", mtime)
    json.add("mtimeNsec", mtimeNsec)
    json.add("mtimeNow", mtimeNow)
  }
}

struct ExtensionAttrResponse: Decodable { var attr: ExtensionAttr }

struct ExtensionListDirResponse: Decodable {
  var attr: ExtensionAttr?
  var entries: [ExtensionAttr]?
}

struct ExtensionReadlinkResponse: Decodable {
  var target: String?
  var targetBytes: String?
}

/// The answer of a name-changing method: the entry and the directories that changed.
struct ExtensionChangeResponse: Decodable {
  var attr: ExtensionAttr?
  var parent: ExtensionAttr?
  var toParent: ExtensionAttr?

  var created: RemoteEntryState? {
    attr.map { RemoteEntryState($0.attributes, parent: parent?.attributes) }
  }

  var nameChange: RemoteNameChange {
    RemoteNameChange(
      attributes: attr?.attributes, parent: parent?.attributes,
      destinationParent: toParent?.attributes)
  }
}

struct ExtensionWriteResponse: Decodable {
  var attr: ExtensionAttr?
  /// A replace renamed into the directory: its attr after that.
  var parent: ExtensionAttr?
}

struct ExtensionStatfsResponse: Decodable {
  var bsize: UInt64?
  var frsize: UInt64?
  var blocks: JSONInt64?
  var bfree: JSONInt64?
  var bavail: JSONInt64?
  var files: JSONInt64?
  var ffree: JSONInt64?
  var favail: JSONInt64?
  var namemax: UInt64?

  var statistics: RemoteFilesystemStatistics {
    let unit = frsize ?? bsize ?? 4096
    let total = (blocks?.value ?? 0) * unit
    let free = (bfree?.value ?? 0) * unit
    var result = RemoteFilesystemStatistics(
      totalBytes: total, usedBytes: total > free ? total - free : 0)
    result.blockSize = unit
    result.totalBlocks = blocks?.value
    result.freeBlocks = bfree?.value
    result.availableBlocks = bavail?.value
    result.totalFiles = files?.value
    result.freeFiles = ffree?.value
    result.availableFiles = favail?.value
    result.maximumNameLength = namemax
    return result
  }
}

/// The rich stat (§4.2).
struct ExtensionAttr: Decodable {
  var ino: JSONInt64?
  var mode: UInt32?
  var nlink: UInt32?
  var uid: UInt32?
  var gid: UInt32?
  var rdev: JSONInt64?
  var size: JSONInt64?
  var blocks: JSONInt64?
  var atime: JSONSignedInt64?
  var mtime: JSONSignedInt64?
  var ctime: JSONSignedInt64?
  var atimeNsec: Int32?
  var mtimeNsec: Int32?
  var ctimeNsec: Int32?
  var target: String?
  var targetBytes: String?
  var name: String?
  var nameBytes: String?

  var attributes: RemoteAttributes {
    let fullMode = mode ?? 0
    var linkText = target
    if linkText == nil, let targetBytes, let raw = Data(base64Encoded: targetBytes) {
      linkText = String(decoding: raw, as: UTF8.self)
    }
    let type = Self.type(of: fullMode)
    return RemoteAttributes(
      type: type, size: size?.value ?? 0, permissions: fullMode & 0o7777,
      modificationTime: RemoteTime(seconds: mtime?.value ?? 0, nanoseconds: mtimeNsec ?? 0),
      accessTime: RemoteTime(seconds: atime?.value ?? 0, nanoseconds: atimeNsec ?? 0),
      changeTime: RemoteTime(seconds: ctime?.value ?? 0, nanoseconds: ctimeNsec ?? 0),
      symlinkTarget: type == .symlink ? linkText : nil, inode: ino?.value, linkCount: nlink,
      uid: uid, gid: gid, blocks: blocks?.value, deviceNumber: rdev?.value)
  }

  static func type(of mode: UInt32) -> RemoteFileType { RemoteFileType(mode: mode) }
}

/// A signed int64 as protobuf JSON writes it (a string), also accepting a bare number.
struct JSONSignedInt64: Decodable, Sendable, Equatable {
  var value: Int64

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if let text = try? container.decode(String.self) {
      guard let number = Int64(text) else {
        throw DecodingError.dataCorruptedError(
          in: container, debugDescription: "not an int64: \(text)")
      }
      value = number
    } else {
      value = try container.decode(Int64.self)
    }
  }
}

/// An answer with a hand-written reader for the common case; nil sends the bytes to JSONDecoder.
protocol FastJSONDecodable: Decodable {
  init?(fastJSON bytes: UnsafeBufferPointer<UInt8>)
}

extension FastJSONDecodable {
  static func decodeFast(_ bytes: [UInt8]) -> Self? {
    bytes.withUnsafeBufferPointer { Self(fastJSON: $0) }
  }
}

extension ExtensionAttrResponse: FastJSONDecodable {
  init?(fastJSON bytes: UnsafeBufferPointer<UInt8>) {
    var scanner = JSONScanner(bytes)
    var attr: ExtensionAttr?
    var seen = false
    guard scanner.consume(UInt8(ascii: "{")),
      scanner.members({ scanner, key in
        guard key.spells("attr") else { return scanner.skipValue() }
        guard !seen, !scanner.consumeNull() else { return false }  // null: JSONDecoder's error.
        seen = true
        attr = ExtensionAttr(scanning: &scanner)
        return attr != nil
      }), scanner.isAtEnd, let attr
    else { return nil }
    self.attr = attr
  }
}

extension ExtensionChangeResponse: FastJSONDecodable {
  init?(fastJSON bytes: UnsafeBufferPointer<UInt8>) {
    var scanner = JSONScanner(bytes)
    var found: [ExtensionAttr?] = [nil, nil, nil]
    guard scanner.consume(UInt8(ascii: "{")),
      scanner.members({ scanner, key in
        let slot =
          key.spells("attr") ? 0 : key.spells("parent") ? 1 : key.spells("toParent") ? 2 : -1
        guard slot >= 0 else { return scanner.skipValue() }
        guard found[slot] == nil else { return false }
        if scanner.consumeNull() { return true }
        found[slot] = ExtensionAttr(scanning: &scanner)
        return found[slot] != nil
      }), scanner.isAtEnd
    else { return nil }
    (attr, parent, toParent) = (found[0], found[1], found[2])
  }
}

extension ExtensionListDirResponse: FastJSONDecodable {
  init?(fastJSON bytes: UnsafeBufferPointer<UInt8>) {
    var scanner = JSONScanner(bytes)
    var attr: ExtensionAttr?
    var entries: [ExtensionAttr]?
    var seen = (attr: false, entries: false)
    guard scanner.consume(UInt8(ascii: "{")),
      scanner.members({ scanner, key in
        if key.spells("attr") {
          guard !seen.attr else { return false }
          seen.attr = true
          if scanner.consumeNull() { return true }
          attr = ExtensionAttr(scanning: &scanner)
          return attr != nil
        }
        if key.spells("entries") {
          guard !seen.entries else { return false }
          seen.entries = true
          if scanner.consumeNull() { return true }
          guard scanner.consume(UInt8(ascii: "[")) else { return false }
          var list: [ExtensionAttr] = []
          if !scanner.consume(UInt8(ascii: "]")) {
            repeat {
              guard let entry = ExtensionAttr(scanning: &scanner) else { return false }
              list.append(entry)
            } while scanner.consume(UInt8(ascii: ","))
            guard scanner.consume(UInt8(ascii: "]")) else { return false }
          }
          entries = list
          return true
        }
        return scanner.skipValue()
      }), scanner.isAtEnd
    else { return nil }
    self.attr = attr
    self.entries = entries
  }
}

extension ExtensionAttr {
  /// One attr object, read the way the synthesized `init(from:)` reads it with JSONDecoder;
  /// nil where that would differ or fail.
  fileprivate init?(scanning scanner: inout JSONScanner) {
    guard scanner.consume(UInt8(ascii: "{")) else { return nil }
    var fields = ExtensionAttr()
    var seen: UInt32 = 0
    let complete = scanner.members { scanner, key in
      guard let field = Self.fieldIndex(key) else { return scanner.skipValue() }
      guard seen & (1 << field) == 0 else { return false }
      seen |= 1 << field
      if scanner.consumeNull() { return true }
      switch field {
      case 0: fields.ino = Self.int64(&scanner).map { JSONInt64(UInt64(max(0, $0))) }
      case 1: fields.mode = Self.uint32(&scanner)
      case 2: fields.nlink = Self.uint32(&scanner)
      case 3: fields.uid = Self.uint32(&scanner)
      case 4: fields.gid = Self.uint32(&scanner)
      case 5: fields.rdev = Self.int64(&scanner).map { JSONInt64(UInt64(max(0, $0))) }
      case 6: fields.size = Self.int64(&scanner).map { JSONInt64(UInt64(max(0, $0))) }
      case 7: fields.blocks = Self.int64(&scanner).map { JSONInt64(UInt64(max(0, $0))) }
      case 8: fields.atime = Self.int64(&scanner).map(JSONSignedInt64.init)
      case 9: fields.mtime = Self.int64(&scanner).map(JSONSignedInt64.init)
      case 10: fields.ctime = Self.int64(&scanner).map(JSONSignedInt64.init)
      case 11: fields.atimeNsec = Self.int32(&scanner)
      case 12: fields.mtimeNsec = Self.int32(&scanner)
      case 13: fields.ctimeNsec = Self.int32(&scanner)
      case 14: fields.target = scanner.string()
      case 15: fields.targetBytes = scanner.string()
      case 16: fields.name = scanner.string()
      default: fields.nameBytes = scanner.string()
      }
      // Every field was null-checked above, so nil here means the value did not read.
      return fields.has(field)
    }
    guard complete else { return nil }
    self = fields
  }

  private static func fieldIndex(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
    switch key.count {
    case 3:
      if key.spells("ino") { return 0 }
      if key.spells("uid") { return 3 }
      if key.spells("gid") { return 4 }
    case 4:
      if key.spells("mode") { return 1 }
      if key.spells("rdev") { return 5 }
      if key.spells("size") { return 6 }
      if key.spells("name") { return 16 }
    case 5:
      if key.spells("nlink") { return 2 }
      if key.spells("atime") { return 8 }
      if key.spells("mtime") { return 9 }
      if key.spells("ctime") { return 10 }
    case 6:
      if key.spells("blocks") { return 7 }
      if key.spells("target") { return 14 }
    case 9:
      if key.spells("atimeNsec") { return 11 }
      if key.spells("mtimeNsec") { return 12 }
      if key.spells("ctimeNsec") { return 13 }
      if key.spells("nameBytes") { return 17 }
    case 11:
      if key.spells("targetBytes") { return 15 }
    default: break
    }
    return nil
  }

  private func has(_ field: Int) -> Bool {
    switch field {
    case 0: ino != nil
    case 1: mode != nil
    case 2: nlink != nil
    case 3: uid != nil
    case 4: gid != nil
    case 5: rdev != nil
    case 6: size != nil
    case 7: blocks != nil
    case 8: atime != nil
    case 9: mtime != nil
    case 10: ctime != nil
    case 11: atimeNsec != nil
    case 12: mtimeNsec != nil
    case 13: ctimeNsec != nil
    case 14: target != nil
    case 15: targetBytes != nil
    case 16: name != nil
    default: nameBytes != nil
    }
  }

  /// An int64 as a decimal string (what `Int64(_:)` parses) or a bare integer.
  private static func int64(_ scanner: inout JSONScanner) -> Int64? {
    if scanner.nextIsString { return scanner.quotedInteger() }
    return scanner.integer()
  }

  private static func uint32(_ scanner: inout JSONScanner) -> UInt32? {
    scanner.integer().flatMap { UInt32(exactly: $0) }
  }

  private static func int32(_ scanner: inout JSONScanner) -> Int32? {
    scanner.integer().flatMap { Int32(exactly: $0) }
  }
}

extension JSONSignedInt64 {
  fileprivate init(_ value: Int64) { self.value = value }
}
