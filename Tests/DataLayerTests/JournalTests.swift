import Backend
import Foundation
import Logging
import TestSupport
import XCTest

@testable import DataLayer

/// The write-back journal's framing: replay keeps every whole record and stops at a torn one,
/// which a crash mid-append leaves.
final class JournalTests: XCTestCase {
  func testReplayStopsAtATornRecordAndCutsIt() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    var first = JournalRecord(.mkdir, "/a")
    first.mode = 0o755
    var second = JournalRecord(.put, "/a/f")
    second.inlineSize = 5
    let third = JournalRecord(.unlink, "/a/f")
    do {
      let journal = try Journal(directory: folder.path)
      _ = try journal.append(framed: try JournalFraming.encode(first))
      _ = try journal.append(framed: try JournalFraming.encode(second) + Array("hello".utf8))
      let framed = try JournalFraming.encode(third)
      // A crash in the middle of the third append.
      _ = try journal.append(framed: Array(framed.prefix(framed.count - 3)))
    }
    let journal = try Journal(directory: folder.path)
    let records = try journal.replay()
    XCTAssertEqual(records.map(\.record), [first, second])
    XCTAssertEqual(try journal.read(at: records[1].contentOffset, count: 5), Array("hello".utf8))
    // New records follow the last whole one.
    _ = try journal.append(framed: try JournalFraming.encode(third))
    XCTAssertEqual(
      try Journal(directory: folder.path).replay().map(\.record), [first, second, third])
  }

  func testAFlippedByteEndsTheReplayThere() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    let record = JournalRecord(.rmdir, "/gone")
    do {
      let journal = try Journal(directory: folder.path)
      _ = try journal.append(framed: try JournalFraming.encode(record))
      _ = try journal.append(framed: try JournalFraming.encode(record))
    }
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder.path + "/journal")))
    bytes[bytes.count - 2] ^= 0xFF
    try Data(bytes).write(to: URL(fileURLWithPath: folder.path + "/journal"))
    XCTAssertEqual(try Journal(directory: folder.path).replay().map(\.record), [record])
  }
}

extension JournalTests {
  /// The hand-written JSON decodes to the same record, names with quotes and control bytes too.
  func testRecordsSurviveTheirJSON() throws {
    var record = JournalRecord(.rename, "/a \"quoted\"\\name\u{1}")
    record.destination = "/ünïcode/b"
    record.mode = 0o4755
    record.uid = 1000
    record.accessTime = [1_500_000_000, 123_456_789]
    record.modificationTime = [-5, 0]
    record.exclusive = false
    record.noReplace = true
    record.inlineSize = 1 << 33
    record.dataFile = "/state/data/x"
    record.contentSize = 7
    record.madeAt = [1, 2]
    let decoded = try JSONDecoder().decode(JournalRecord.self, from: Data(record.json))
    XCTAssertEqual(decoded, record)
  }
}
