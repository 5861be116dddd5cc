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
}

struct ExtensionEmpty: Codable {}

struct ExtensionPath: Encodable { var path: String }

struct ExtensionCreate: Encodable {
  var path: String
  var mode: UInt32
  var exclusive: Bool? = nil
  var rdev: String? = nil
  var target: String? = nil
}

struct ExtensionTwoPaths: Encodable {
  var from: String
  var to: String
  var flags: UInt32? = nil
}

struct ExtensionFsync: Encodable {
  var path: String
  var dataOnly: Bool
}

struct ExtensionSetattr: Encodable {
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

struct ExtensionWriteResponse: Decodable {
  var attr: ExtensionAttr?
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

  static func type(of mode: UInt32) -> RemoteFileType {
    switch mode & 0o170000 {
    case 0o040000: .directory
    case 0o120000: .symlink
    case 0o010000: .fifo
    case 0o140000: .socket
    case 0o020000: .characterDevice
    case 0o060000: .blockDevice
    default: .regular
    }
  }
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
