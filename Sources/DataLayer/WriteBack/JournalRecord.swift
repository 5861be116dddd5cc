import Backend
import CZlib
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
  /// Who made it (`CallerIdentity`); absent in records of older versions and when changes are
  /// made as the sandbox's own user.
  var callerUID: UInt32?
  var callerGID: UInt32?
  var callerGroups: [UInt32]?

  init(_ operation: Operation, _ path: String) {
    self.operation = operation
    self.path = path
  }

  var caller: CallerIdentity? {
    get {
      guard let callerUID, let callerGID else { return nil }
      return CallerIdentity(uid: callerUID, gid: callerGID, groups: callerGroups ?? [])
    }
    set {
      callerUID = newValue?.uid
      callerGID = newValue?.gid
      callerGroups = newValue.map(\.groups)
    }
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
    number("callerUID", callerUID)
    number("callerGID", callerGID)
    if let callerGroups {
      key("callerGroups")
      out.append(
        contentsOf: Array(("[" + callerGroups.map(String.init).joined(separator: ",") + "]").utf8))
    }
    out.append(UInt8(ascii: "}"))
    return out
  }
}

/// Frames records as `[UInt32 length][UInt32 checksum][JSON][inline content]`, little-endian.
/// The checksum (CRC-32 of JSON and content) covers the content too: the journal's tail is
/// preallocated zeros, so a record whose content never reached the disk must fail it.
/// `Journal` mixes its generation into the checksum when it appends: records a reset left
/// behind in the file fail it, and replay stops before them.
enum JournalFraming {
  static let headerSize = 8

  static func encode(_ record: JournalRecord, content: [UInt8] = []) throws -> [UInt8] {
    let body = record.json
    var framed: [UInt8] = []
    framed.reserveCapacity(headerSize + body.count + content.count)
    append(UInt32(body.count), to: &framed)
    append(checksum(body, content[...]), to: &framed)
    framed += body
    framed += content
    return framed
  }

  /// Mixes `generation` into a frame made by `encode`, in place.
  static func seal(_ framed: inout [UInt8], generation: UInt64) {
    let mixed = read(framed, at: 4) ^ mix(generation)
    for index in 0..<4 { framed[4 + index] = UInt8(truncatingIfNeeded: mixed >> (8 * index)) }
  }

  /// The record at `offset` of `bytes` and where the next one starts, or nil at a cut end, a
  /// torn record, zeros, or a record of another generation.
  static func decode(_ bytes: [UInt8], at offset: Int, generation: UInt64)
    -> (JournalRecord, next: Int)?
  {
    guard offset + headerSize <= bytes.count else { return nil }
    let length = Int(read(bytes, at: offset))
    let sum = read(bytes, at: offset + 4) ^ mix(generation)
    let start = offset + headerSize
    guard length > 0, start + length <= bytes.count else { return nil }
    let body = Array(bytes[start..<start + length])
    guard let record = try? JSONDecoder().decode(JournalRecord.self, from: Data(body)) else {
      return nil
    }
    let next = start + length + Int(record.inlineSize ?? 0)
    guard next <= bytes.count, checksum(body, bytes[(start + length)..<next]) == sum else {
      return nil
    }
    return (record, next)
  }

  static func checksum(_ body: [UInt8], _ content: ArraySlice<UInt8>) -> UInt32 {
    var crc = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) }
    crc = content.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, UInt32($0.count)) }
    return UInt32(truncatingIfNeeded: crc)
  }

  private static func mix(_ generation: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: generation ^ (generation >> 32))
  }

  private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
    for shift in stride(from: 0, to: 32, by: 8) {
      bytes.append(UInt8(truncatingIfNeeded: value >> shift))
    }
  }

  static func read(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    var value: UInt32 = 0
    for index in 0..<4 { value |= UInt32(bytes[offset + index]) << (8 * index) }
    return value
  }
}
