import Foundation
import Glibc
import XCTest

@testable import AgentCore

/// The hand-written answers must be byte for byte what `protocolJSONEncoder()` makes of them.
final class ProtocolJSONWriterTests: XCTestCase {
  func assertSameBytes<Value: ProtocolJSONWritable>(
    _ value: Value, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    var json = ProtocolJSONWriter()
    value.write(to: &json)
    let expected = try protocolJSONEncoder().encode(value)
    XCTAssertEqual(
      String(decoding: json.bytes, as: UTF8.self), String(decoding: expected, as: UTF8.self),
      file: file, line: line)
    XCTAssertEqual(json.bytes, Array(expected), file: file, line: line)
  }

  private func sampleStat(_ seed: Int64) -> stat {
    var info = stat()
    info.st_dev = UInt(bitPattern: Int(seed) &* 7919)
    info.st_ino = UInt(UInt64.max - UInt64(seed))
    info.st_mode = S_IFREG | 0o6755
    info.st_nlink = 3
    info.st_uid = UInt32.max - 1
    info.st_gid = 0
    info.st_rdev = UInt(seed)
    info.st_size = Int(seed) * 1_000_003
    info.st_blocks = Int(seed)
    info.st_blksize = 4096
    info.st_atim = timespec(tv_sec: Int(-seed), tv_nsec: 999_999_999)
    info.st_mtim = timespec(tv_sec: Int(Int64.max), tv_nsec: 0)
    info.st_ctim = timespec(tv_sec: Int(Int64.min), tv_nsec: 1)
    return info
  }

  func testAttrsMatchJSONEncoder() throws {
    let names: [[UInt8]?] = [
      nil, [], Array("plain.txt".utf8), Array("a/b\\c\"d é 😀 \u{7F}\u{2028}".utf8),
      (0..<0x20).map { UInt8($0) }, [0xFF, 0xFE, 0x41],
    ]
    for (index, name) in names.enumerated() {
      for target in names {
        try assertSameBytes(
          ExtensionAttrResponse(
            attr: ExtensionAttr(info: sampleStat(Int64(index)), target: target, name: name)))
      }
    }
  }

  func testListingsMatchJSONEncoder() throws {
    let own = ExtensionAttr(info: sampleStat(1))
    try assertSameBytes(ExtensionListDirResponse(attr: own, entries: []))
    let entries = (0..<50).map { index in
      ExtensionAttr(info: sampleStat(Int64(index)), name: Array("file-\(index)".utf8))
    }
    try assertSameBytes(ExtensionListDirResponse(attr: own, entries: entries))
  }
}

extension ProtocolJSONWriterTests {
  func testEnvdEntriesMatchJSONEncoder() throws {
    let full = EntryInfo(
      name: "a \"b\"\n/é", type: .file, path: "/d/a \"b\"\n/é", size: -5, mode: 0o644,
      permissions: "-rw-r--r--", owner: "root", group: "wheel",
      modifiedTime: "2024-01-02T03:04:05.123Z", symlinkTarget: "")
    let bare = EntryInfo(
      name: "", type: nil, path: "", size: 0, mode: 0, permissions: "", owner: "", group: "",
      modifiedTime: nil, symlinkTarget: nil)
    var directory = full
    directory.type = .directory
    directory.symlinkTarget = nil
    directory.size = Int64.max
    var link = full
    link.isSymlink = true
    link.metadata = ["owner": "alice", "a \"quoted\"\n": "é", "b": ""]
    try assertSameBytes(EntryResponse(entry: link))
    try assertSameBytes(EntryResponse(entry: full))
    try assertSameBytes(EntryResponse(entry: bare))
    try assertSameBytes(EntriesResponse(entries: []))
    try assertSameBytes(EntriesResponse(entries: [full, bare, directory, link]))
  }
}
