import Foundation
import XCTest

@testable import AgentCore

/// Command output becomes JSON strings: a character split between two pipe reads must arrive
/// whole, and bytes that are not UTF-8 become U+FFFD rather than ending the stream.
final class VercelTextTests: XCTestCase {
  func testCharacterSplitAcrossChunksIsHeldBack() {
    var decoder = UTF8Chunks()
    let euro = Array("€".utf8)
    XCTAssertEqual(decoder.decode(Data([0x61] + euro.prefix(1))), "a")
    XCTAssertEqual(decoder.decode(Data(euro[1..<2])), "")
    XCTAssertEqual(decoder.decode(Data(euro.suffix(1) + [0x62])), "€b")
    XCTAssertEqual(decoder.flush(), "")
  }

  func testFourByteCharacterAndInvalidBytes() {
    var decoder = UTF8Chunks()
    let emoji = Array("😀".utf8)
    XCTAssertEqual(decoder.decode(Data(emoji.prefix(3))), "")
    XCTAssertEqual(decoder.decode(Data(emoji.suffix(1))), "😀")
    XCTAssertEqual(decoder.decode(Data([0xFF, 0x41])), "\u{FFFD}A")
    XCTAssertEqual(decoder.decode(Data([0xE2, 0x82])), "")
    XCTAssertEqual(decoder.flush(), "\u{FFFD}")
  }

  func testSignalDeathsAreReportedAsShellsDo() {
    XCTAssertEqual(VercelCommand.exitCode(ProcessExit(waitStatus: 9)), 137)
    XCTAssertEqual(VercelCommand.exitCode(ProcessExit(waitStatus: 15)), 143)
    XCTAssertEqual(VercelCommand.exitCode(ProcessExit(waitStatus: 3 << 8)), 3)
  }
}
