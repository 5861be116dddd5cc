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
      _ = try journal.append(
        framed: try JournalFraming.encode(second, content: Array("hello".utf8)))
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

  /// A put copies its content into a data file before its record is committed; a reset in
  /// between (the drain found nothing pending) must keep that file, or the put's upload finds
  /// it gone and an acknowledged write is lost. (It was deleted before.)
  func testAResetKeepsDataFilesNotYetCommitted() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    let journal = try Journal(directory: folder.path)
    let applied = journal.newDataFilePath()
    try Data("applied".utf8).write(to: URL(fileURLWithPath: applied))
    journal.releaseDataFile(applied)
    let copying = journal.newDataFilePath()
    try Data("being copied".utf8).write(to: URL(fileURLWithPath: copying))
    journal.reset()
    XCTAssertFalse(FileManager.default.fileExists(atPath: applied))
    XCTAssertTrue(FileManager.default.fileExists(atPath: copying))
    journal.releaseDataFile(copying)
    journal.reset()
    XCTAssertFalse(FileManager.default.fileExists(atPath: copying))
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
    let frameSize = try JournalFraming.encode(record).count
    bytes[Int(Journal.fileHeaderSize) + 2 * frameSize - 2] ^= 0xFF
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

extension JournalTests {
  /// The tail is zeros written ahead: a record whose header reached the disk but whose content
  /// did not must not replay as a file of zeros.
  func testARecordWhoseContentIsMissingIsNotReplayed() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    let first = JournalRecord(.mkdir, "/a")
    var second = JournalRecord(.put, "/a/f")
    second.inlineSize = 4096
    let content = [UInt8](repeating: 7, count: 4096)
    let secondStart: Int
    do {
      let journal = try Journal(directory: folder.path)
      secondStart = Int(try journal.append(framed: try JournalFraming.encode(first)))
      _ = try journal.append(framed: try JournalFraming.encode(second, content: content))
    }
    // The crash: the content's page never reached the disk.
    let url = URL(fileURLWithPath: folder.path + "/journal")
    var bytes = try [UInt8](Data(contentsOf: url))
    let contentStart = secondStart + (try JournalFraming.encode(second).count)
    for index in contentStart..<contentStart + content.count { bytes[index] = 0 }
    try Data(bytes).write(to: url)
    XCTAssertEqual(try Journal(directory: folder.path).replay().map(\.record), [first])
  }

  /// Emptying keeps the file (its zeros save the next fdatasync a size change); what it held
  /// before never replays, whether or not new records follow.
  func testRecordsFromBeforeAResetNeverReplay() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    let old = [JournalRecord(.mkdir, "/old"), JournalRecord(.rmdir, "/older")]
    let new = JournalRecord(.mkdir, "/new")
    do {
      let journal = try Journal(directory: folder.path)
      for record in old { _ = try journal.append(framed: try JournalFraming.encode(record)) }
      journal.reset()
    }
    XCTAssertEqual(try Journal(directory: folder.path).replay().map(\.record), [])
    do {
      let journal = try Journal(directory: folder.path)
      _ = try journal.replay()
      for record in old { _ = try journal.append(framed: try JournalFraming.encode(record)) }
      journal.reset()
      _ = try journal.append(framed: try JournalFraming.encode(new))
    }
    XCTAssertEqual(try Journal(directory: folder.path).replay().map(\.record), [new])
  }

  func testAppendsLandInZerosWrittenAhead() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    let journal = try Journal(directory: folder.path)
    _ = try journal.replay()
    _ = try journal.append(framed: try JournalFraming.encode(JournalRecord(.mkdir, "/a")))
    let size = try XCTUnwrap(
      try FileManager.default.attributesOfItem(atPath: folder.path + "/journal")[.size] as? Int)
    XCTAssertGreaterThanOrEqual(UInt64(size), Journal.preallocationStep)
    for index in 0..<100 {
      _ = try journal.append(framed: try JournalFraming.encode(JournalRecord(.mkdir, "/d\(index)")))
    }
    XCTAssertEqual(
      try FileManager.default.attributesOfItem(atPath: folder.path + "/journal")[.size] as? Int,
      size)
  }

  func testAFileThatIsNotAJournalIsRefused() throws {
    let folder = try TemporaryDirectory(prefix: "journal-test")
    defer { folder.remove() }
    try Data("not a journal".utf8).write(to: URL(fileURLWithPath: folder.path + "/journal"))
    XCTAssertThrowsError(try Journal(directory: folder.path)) { error in
      XCTAssertTrue("\(error)".contains("not a journal"), "\(error)")
    }
  }
}

extension JournalTests {
  /// A record keeps who made the change; one written before callers were journaled replays as
  /// made by the sandbox's own user.
  func testRecordsKeepTheirCaller() throws {
    var record = JournalRecord(.create, "/f")
    record.caller = CallerIdentity(uid: 65534, gid: 100, groups: [5, 6])
    let decoded = try JSONDecoder().decode(JournalRecord.self, from: Data(record.json))
    XCTAssertEqual(decoded.caller, CallerIdentity(uid: 65534, gid: 100, groups: [5, 6]))
    let older = #"{"operation":"create","path":"/f","mode":420,"madeAt":[1,2]}"#
    let old = try JSONDecoder().decode(JournalRecord.self, from: Data(older.utf8))
    XCTAssertNil(old.caller)
  }
}

extension JournalTests {
  /// A full disk under the state folder is the local ENOSPC, naming the journal.
  func testAFullDiskIsALocalENOSPCNamingTheJournal() throws {
    let disk = try SmallDisk(size: "1m")
    defer { disk.remove() }
    let journal = try Journal(directory: disk.path)
    _ = try journal.replay()
    let content = [UInt8](repeating: 1, count: 64 << 10)
    do {
      for index in 0..<64 {
        var record = JournalRecord(.put, "/f\(index)")
        record.inlineSize = UInt64(content.count)
        _ = try journal.append(framed: try JournalFraming.encode(record, content: content))
      }
      XCTFail("4 MiB fit in a journal on a 1 MiB disk")
    } catch {
      let local = try XCTUnwrap(error as? LocalError, "\(type(of: error)): \(error)")
      XCTAssertEqual(local.errno, ENOSPC)
      XCTAssertTrue(local.description.contains(disk.path + "/journal"), local.description)
    }
  }
}
