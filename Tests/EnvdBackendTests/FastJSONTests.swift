import Backend
import XCTest

@testable import EnvdBackend

/// The hand-written readers of extension answers: where they answer, they answer exactly what
/// JSONDecoder does; where JSONDecoder fails, they step aside (nil) so its error stands.
final class FastJSONTests: XCTestCase {
  private struct Shown: Equatable {
    var attributes: RemoteAttributes
    var name: String?
    var nameBytes: String?
    var targetBytes: String?
  }

  private func shown(_ attr: ExtensionAttr?) -> Shown? {
    attr.map {
      Shown(
        attributes: $0.attributes, name: $0.name, nameBytes: $0.nameBytes,
        targetBytes: $0.targetBytes)
    }
  }

  /// Returns whether the fast path answered.
  @discardableResult
  private func assertAgrees(_ json: String, file: StaticString = #filePath, line: UInt = #line)
    -> Bool
  {
    let bytes = Array(json.utf8)
    let slow = try? decodeJSON(ExtensionListDirResponse.self, bytes)
    let fast = ExtensionListDirResponse.decodeFast(bytes)
    if let fast {
      XCTAssertNotNil(slow, "fast read what JSONDecoder rejects: \(json)", file: file, line: line)
      XCTAssertEqual(shown(fast.attr), shown(slow?.attr), json, file: file, line: line)
      XCTAssertEqual(
        fast.entries?.map { shown($0) }, slow?.entries?.map { shown($0) }, json, file: file,
        line: line)
    }
    let slowAttr = try? decodeJSON(ExtensionAttrResponse.self, bytes)
    if let fastAttr = ExtensionAttrResponse.decodeFast(bytes) {
      XCTAssertNotNil(
        slowAttr, "fast read what JSONDecoder rejects: \(json)", file: file, line: line)
      XCTAssertEqual(shown(fastAttr.attr), shown(slowAttr?.attr), json, file: file, line: line)
    }
    return fast != nil
  }

  private let attr =
    #"{"atime":"1600000000","atimeNsec":1,"blksize":4096,"blocks":"8","ctime":"-5","ctimeNsec":999999999,"dev":"2049","gid":4321,"ino":"9223372036854775807","mode":33261,"mtime":"1700000000","mtimeNsec":123456789,"nlink":2,"rdev":"0","size":"5","uid":1234}"#

  func testAgentAnswersTakeTheFastPath() {
    let link =
      #"{"atime":"1","mode":41471,"name":"l\"i\\nk\n\u0001 é 😀","size":"7","target":"../x y/z"}"#
    let odd = #"{"mode":33188,"nameBytes":"//4=","targetBytes":"/w=="}"#
    XCTAssertTrue(assertAgrees(#"{"attr":\#(attr),"entries":[]}"#))
    XCTAssertTrue(assertAgrees(#"{"attr":\#(attr),"entries":[\#(attr),\#(link),\#(odd)]}"#))
    XCTAssertTrue(assertAgrees(" {\n\"entries\" : [ \(link) , {} ] ,\"attr\":null}\r\n"))
    XCTAssertTrue(assertAgrees(#"{"attr":\#(attr)}"#))
    XCTAssertTrue(assertAgrees(#"{}"#))
    XCTAssertTrue(assertAgrees(#"{"entries":null}"#))
    // Escaped text, surrogate pairs, numbers given as strings or bare, unknown fields skipped.
    XCTAssertTrue(
      assertAgrees(
        #"{"entries":[{"name":"\ud83d\ude00\/\b\f\r\t\u00e9","size":12,"ino":"-3","atime":-9223372036854775808,"mtime":"-9223372036854775808","ctime":"+7","rdev":"007","blocks":"9223372036854775807","extra":{"a":[1,-2.5e+3,true,false,null,"x"]},"more":[],"mode":null}]}"#
      ))
  }

  func testOddInputIsLeftToJSONDecoder() {
    for json in [
      #"{"entries":[{"size":"12x"}]}"#, #"{"entries":[{"size":""}]}"#,
      #"{"entries":[{"size":"-"}]}"#,
      #"{"entries":[{"size":" 1"}]}"#, #"{"entries":[{"size":"1 "}]}"#,
      #"{"entries":[{"size":"1.0"}]}"#,
      #"{"entries":[{"size":"9223372036854775808"}]}"#,
      #"{"entries":[{"size":"-9223372036854775809"}]}"#,
      #"{"entries":[{"size":"+-1"}]}"#, #"{"entries":[{"mode":"420"}]}"#,
      #"{"entries":[{"mode":-1}]}"#, #"{"entries":[{"mode":4294967296}]}"#,
      #"{"entries":[{"mode":1.0}]}"#, #"{"entries":[{"mode":1e2}]}"#,
      #"{"entries":[{"mode":01}]}"#, #"{"entries":[{"atimeNsec":2147483648}]}"#,
      #"{"entries":[{"size":9223372036854775808}]}"#, #"{"entries":[null]}"#,
      #"{"entries":[{"name":"\ud83d"}]}"#, #"{"entries":[{"name":"\x"}]}"#,
      #"{"entries":[{"name":"a","name":"b"}]}"#, #"{"entries":[{"n\u0061me":"a"}]}"#,
      #"{"entries":[{"name":"a"}],}"#, #"{"entries":[{"name":"a"},]}"#, #"{"entries":{}}"#,
      #"{"entries":[]} x"#, #"[]"#, "", "{", #"{"attr":{"x":01}}"#, #"{"attr":{"x":1.}}"#,
      #"{"attr":{"x":tru}}"#, "{\"entries\":[{\"name\":\"a\u{1}\"}]}",
    ] {
      XCTAssertFalse(assertAgrees(json), json)
    }
    XCTAssertNil(
      ExtensionListDirResponse.decodeFast(
        Array(#"{"entries":[{"name":""#.utf8) + [0xFF, 0x22, 0x7D, 0x5D, 0x7D]))
    XCTAssertNil(ExtensionAttrResponse.decodeFast(Array(#"{"attr":null}"#.utf8)))
    XCTAssertNil(ExtensionAttrResponse.decodeFast(Array(#"{}"#.utf8)))
  }
}
