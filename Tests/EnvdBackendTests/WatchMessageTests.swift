import XCTest

@testable import EnvdBackend

/// The hand-written reader of watch messages answers exactly what JSONDecoder does, or steps
/// aside (nil) where JSONDecoder would fail or where it does not handle the input.
final class WatchMessageTests: XCTestCase {
  private func assertAgrees(
    _ json: String, fast expected: Bool, file: StaticString = #filePath, line: UInt = #line
  ) {
    let bytes = Array(json.utf8)
    let slow = try? decodeJSON(WatchStreamMessage.self, bytes)
    let fast = WatchStreamMessage.decodeFast(bytes)
    XCTAssertEqual(fast != nil, expected, "fast path for \(json)", file: file, line: line)
    if let fast { XCTAssertEqual(fast, slow, json, file: file, line: line) }
  }

  func testEventsAreReadAsJSONDecoderReadsThem() {
    assertAgrees(#"{"start":{}}"#, fast: true)
    assertAgrees(#"{"keepalive":{}}"#, fast: true)
    assertAgrees(
      #"{"filesystem":{"name":"a b.txt","type":"EVENT_TYPE_CREATE"}}"#, fast: true)
    assertAgrees(
      #" { "filesystem" : { "type" : "EVENT_TYPE_RENAME" , "name" : "x\u00e9\n" } } "#, fast: true)
    assertAgrees(
      #"{"filesystem":{"name":null,"type":"EVENT_TYPE_WRITE","extra":[1,{"a":2}]}}"#, fast: true)
    assertAgrees(#"{"filesystem":null,"start":null}"#, fast: true)
    assertAgrees(#"{"start":{"x":1},"other":"y"}"#, fast: true)
  }

  func testWhatItDoesNotHandleGoesToJSONDecoder() {
    assertAgrees(#"{"filesystem":{"name":5}}"#, fast: false)
    assertAgrees(#"{"start":5}"#, fast: false)
    assertAgrees(#"{"filesystem":{"name":"a","name":"b"}}"#, fast: false)
    assertAgrees(#"{"filesystem":{"name":"a"}"#, fast: false)
    assertAgrees(#"[]"#, fast: false)
    assertAgrees(#"{"filesystem":{"name":"a"}} x"#, fast: false)
  }
}
