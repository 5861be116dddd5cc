import Foundation
import Glibc

/// The extension's rich stat (`Attr` in docs/agent-extension.md §4.2): every `stat` field, the
/// raw link text of a symlink, and for directory listings the entry's name. 64-bit integers are
/// strings, as in protobuf JSON; names that are not UTF-8 travel as base64 `…Bytes`.
struct ExtensionAttr: Encodable, Sendable {
  var info: stat
  var target: [UInt8]?
  var name: [UInt8]?

  /// The attr of `entry`, with its link text if it is a symlink. A symlink is stat'ed again after
  /// reading it, since the read may have moved its atime (relatime).
  init(of entry: ResolvedEntry) throws(ErrnoError) {
    info = try entry.lstat()
    if info.isSymlink {
      target = try entry.readLink()
      info = try entry.lstat()
    }
  }

  init(info: stat, target: [UInt8]? = nil, name: [UInt8]? = nil) {
    self.info = info
    self.target = target
    self.name = name
  }

  private enum Key: String, CodingKey {
    case dev, ino, mode, nlink, uid, gid, rdev, size, blocks, blksize
    case atime, atimeNsec, mtime, mtimeNsec, ctime, ctimeNsec
    case target, targetBytes, name, nameBytes
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: Key.self)
    try container.encode(String(UInt64(info.st_dev)), forKey: .dev)
    try container.encode(String(UInt64(info.st_ino)), forKey: .ino)
    try container.encode(UInt32(info.st_mode), forKey: .mode)
    try container.encode(UInt32(truncatingIfNeeded: info.st_nlink), forKey: .nlink)
    try container.encode(UInt32(info.st_uid), forKey: .uid)
    try container.encode(UInt32(info.st_gid), forKey: .gid)
    try container.encode(String(UInt64(info.st_rdev)), forKey: .rdev)
    try container.encode(String(Int64(info.st_size)), forKey: .size)
    try container.encode(String(Int64(info.st_blocks)), forKey: .blocks)
    try container.encode(UInt32(truncatingIfNeeded: info.st_blksize), forKey: .blksize)
    try container.encode(String(Int64(info.st_atim.tv_sec)), forKey: .atime)
    try container.encode(UInt32(info.st_atim.tv_nsec), forKey: .atimeNsec)
    try container.encode(String(Int64(info.st_mtim.tv_sec)), forKey: .mtime)
    try container.encode(UInt32(info.st_mtim.tv_nsec), forKey: .mtimeNsec)
    try container.encode(String(Int64(info.st_ctim.tv_sec)), forKey: .ctime)
    try container.encode(UInt32(info.st_ctim.tv_nsec), forKey: .ctimeNsec)
    if let target { try encodeBytes(target, text: .target, bytes: .targetBytes, in: &container) }
    if let name { try encodeBytes(name, text: .name, bytes: .nameBytes, in: &container) }
  }

  /// UTF-8 as a string under `text`, anything else as base64 under `bytes`.
  private func encodeBytes(
    _ value: [UInt8], text: Key, bytes: Key, in container: inout KeyedEncodingContainer<Key>
  ) throws {
    if let string = String(validating: value, as: UTF8.self) {
      try container.encode(string, forKey: text)
    } else {
      try container.encode(Data(value).base64EncodedString(), forKey: bytes)
    }
  }
}

extension ExtensionAttr: ProtocolJSONWritable {
  /// The same bytes as `encode(to:)` through `protocolJSONEncoder()`: keys in bytewise order.
  func write(to json: inout ProtocolJSONWriter) {
    json.raw("{\"atime\":")
    json.quoted(Int64(info.st_atim.tv_sec))
    json.raw(",\"atimeNsec\":")
    json.number(UInt64(UInt32(info.st_atim.tv_nsec)))
    json.raw(",\"blksize\":")
    json.number(UInt64(UInt32(truncatingIfNeeded: info.st_blksize)))
    json.raw(",\"blocks\":")
    json.quoted(Int64(info.st_blocks))
    json.raw(",\"ctime\":")
    json.quoted(Int64(info.st_ctim.tv_sec))
    json.raw(",\"ctimeNsec\":")
    json.number(UInt64(UInt32(info.st_ctim.tv_nsec)))
    json.raw(",\"dev\":")
    json.quoted(UInt64(info.st_dev))
    json.raw(",\"gid\":")
    json.number(UInt64(UInt32(info.st_gid)))
    json.raw(",\"ino\":")
    json.quoted(UInt64(info.st_ino))
    json.raw(",\"mode\":")
    json.number(UInt64(UInt32(info.st_mode)))
    json.raw(",\"mtime\":")
    json.quoted(Int64(info.st_mtim.tv_sec))
    json.raw(",\"mtimeNsec\":")
    json.number(UInt64(UInt32(info.st_mtim.tv_nsec)))
    if let name { Self.writeBytes(name, text: "name", bytes: "nameBytes", to: &json) }
    json.raw(",\"nlink\":")
    json.number(UInt64(UInt32(truncatingIfNeeded: info.st_nlink)))
    json.raw(",\"rdev\":")
    json.quoted(UInt64(info.st_rdev))
    json.raw(",\"size\":")
    json.quoted(Int64(info.st_size))
    if let target { Self.writeBytes(target, text: "target", bytes: "targetBytes", to: &json) }
    json.raw(",\"uid\":")
    json.number(UInt64(UInt32(info.st_uid)))
    json.raw("}")
  }

  private static func writeBytes(
    _ value: [UInt8], text: StaticString, bytes: StaticString, to json: inout ProtocolJSONWriter
  ) {
    if String(validating: value, as: UTF8.self) != nil {
      json.raw(",")
      json.key(text)
      json.string(utf8: value)
    } else {
      json.raw(",")
      json.key(bytes)
      json.string(Data(value).base64EncodedString())
    }
  }
}
