import Backend
import Foundation

/// One change as the journal keeps it: enough to make it again on the local view after a crash.
/// A file's bytes follow the record in the journal (`inlineSize`) or sit in a data file.
struct JournalRecord: Codable, Sendable, Equatable {
  enum Operation: String, Codable, Sendable {
    case create, put, mkdir, symlink, unlink, rmdir, setattr, rename
  }

  var operation: Operation
  var path: String
  var destination: String?
  var mode: UInt32?
  var uid: UInt32?
  var gid: UInt32?
  var accessTime: [Int64]?
  var modificationTime: [Int64]?
  var target: String?
  var exclusive: Bool?
  var noReplace: Bool?
  /// Bytes of content right after this record in the journal.
  var inlineSize: UInt64?
  /// A data file in the state folder holding the content.
  var dataFile: String?
  var contentSize: UInt64?
  /// When the change was made: the new entry's times, and ctime.
  var madeAt: [Int64]?

  init(_ operation: Operation, _ path: String) {
    self.operation = operation
    self.path = path
  }

  static func time(_ time: RemoteTime) -> [Int64] { [time.seconds, Int64(time.nanoseconds)] }

  static func time(_ stored: [Int64]?) -> RemoteTime? {
    guard let stored, stored.count == 2 else { return nil }
    return RemoteTime(seconds: stored[0], nanoseconds: Int32(stored[1]))
  }

  var attributeChanges: RemoteAttributeChanges {
    RemoteAttributeChanges(
      mode: mode, uid: uid, gid: gid,
      accessTime: Self.time(accessTime).map { .set($0) },
      modificationTime: Self.time(modificationTime).map { .set($0) })
  }
}

extension JournalRecord {
  /// The record as JSON with Codable's keys (replay decodes it with JSONDecoder), written by
  /// hand: JSONEncoder cost a tenth of the daemon's CPU in an rsync, every change pays this.
  var json: [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "{")]
    out.reserveCapacity(160)
    func key(_ name: StaticString) {
      if out.count > 1 { out.append(UInt8(ascii: ",")) }
      out.append(UInt8(ascii: "\""))
      name.withUTF8Buffer { out.append(contentsOf: $0) }
      out.append(contentsOf: Array("\":".utf8))
    }
    func string(_ name: StaticString, _ value: String?) {
      guard let value else { return }
      key(name)
      out.append(UInt8(ascii: "\""))
      for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
          out.append(UInt8(ascii: "\\"))
          out.append(byte)
        case 0..<0x20:
          let hex = Array("0123456789abcdef".utf8)
          out.append(contentsOf: Array("\\u00".utf8))
          out.append(hex[Int(byte >> 4)])
          out.append(hex[Int(byte & 0xF)])
        default:
          out.append(byte)
        }
      }
      out.append(UInt8(ascii: "\""))
    }
    func number<N: BinaryInteger>(_ name: StaticString, _ value: N?) {
      guard let value else { return }
      key(name)
      out.append(contentsOf: String(value).utf8)
    }
    func flag(_ name: StaticString, _ value: Bool?) {
      guard let value else { return }
      key(name)
      out.append(contentsOf: Array((value ? "true" : "false").utf8))
    }
    func pair(_ name: StaticString, _ value: [Int64]?) {
      guard let value else { return }
      key(name)
      out.append(
        contentsOf: Array(("[" + value.map(String.init).joined(separator: ",") + "]").utf8))
    }
    string("operation", operation.rawValue)
    string("path", path)
    string("destination", destination)
    number("mode", mode)
    number("uid", uid)
    number("gid", gid)
    pair("accessTime", accessTime)
    pair("modificationTime", modificationTime)
    string("target", target)
    flag("exclusive", exclusive)
    flag("noReplace", noReplace)
    number("inlineSize", inlineSize)
    string("dataFile", dataFile)
    number("contentSize", contentSize)
    pair("madeAt", madeAt)
    out.append(UInt8(ascii: "}"))
    return out
  }
}

/// Frames records as `[UInt32 length][UInt32 checksum][JSON]`, little-endian: a record cut by a
/// crash fails its length or checksum, and replay stops before it.
enum JournalFraming {
  static let headerSize = 8

  static func encode(_ record: JournalRecord) throws -> [UInt8] {
    let body = record.json
    var framed: [UInt8] = []
    framed.reserveCapacity(headerSize + body.count)
    append(UInt32(body.count), to: &framed)
    append(checksum(body), to: &framed)
    framed += body
    return framed
  }

  /// The record at `offset` of `bytes` and where the next one starts, or nil at a cut end.
  static func decode(_ bytes: [UInt8], at offset: Int) -> (JournalRecord, next: Int)? {
    guard offset + headerSize <= bytes.count else { return nil }
    let length = Int(read(bytes, at: offset))
    let sum = read(bytes, at: offset + 4)
    let start = offset + headerSize
    guard length > 0, start + length <= bytes.count else { return nil }
    let body = Array(bytes[start..<start + length])
    guard checksum(body) == sum,
      let record = try? JSONDecoder().decode(JournalRecord.self, from: Data(body))
    else { return nil }
    let next = start + length + Int(record.inlineSize ?? 0)
    guard next <= bytes.count else { return nil }
    return (record, next)
  }

  /// FNV-1a: cheap, and enough to tell a torn write from a record.
  static func checksum(_ bytes: [UInt8]) -> UInt32 {
    var hash: UInt32 = 2_166_136_261
    for byte in bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
    return hash
  }

  private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
    for shift in stride(from: 0, to: 32, by: 8) {
      bytes.append(UInt8(truncatingIfNeeded: value >> shift))
    }
  }

  private static func read(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    var value: UInt32 = 0
    for index in 0..<4 { value |= UInt32(bytes[offset + index]) << (8 * index) }
    return value
  }
}
