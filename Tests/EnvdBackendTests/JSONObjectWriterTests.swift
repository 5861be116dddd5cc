import Backend
import Foundation
import XCTest

@testable import EnvdBackend

/// The hand-written requests must say what JSONEncoder says of the same message.
final class JSONObjectWriterTests: XCTestCase {
  private func assertSameObject<Message: Encodable & JSONObjectEncodable>(
    _ message: Message, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let ours = try JSONSerialization.jsonObject(with: Data(message.jsonBytes)) as? NSDictionary
    let theirs =
      try JSONSerialization.jsonObject(with: JSONEncoder().encode(message)) as? NSDictionary
    XCTAssertNotNil(ours, file: file, line: line)
    XCTAssertEqual(ours, theirs, file: file, line: line)
  }

  func testRequestsMatchJSONEncoder() throws {
    let names = [
      "/plain", "/a\"quote", "/back\\slash", "/tab\tnew\nline\u{1}\u{1f}", "/ünï/ℂødé/🙂",
      "/slash/in/path", "",
    ]
    for name in names {
      try assertSameObject(ExtensionPath(path: name))
      try assertSameObject(ExtensionCreate(path: name, mode: 0o100644, exclusive: true))
      try assertSameObject(ExtensionCreate(path: name, mode: 0o20600, rdev: "1025"))
      try assertSameObject(ExtensionCreate(path: name, mode: 0o120777, target: name + "\u{7f}"))
      try assertSameObject(ExtensionTwoPaths(from: name, to: name + "2", flags: 1))
      try assertSameObject(ExtensionTwoPaths(from: name, to: "/x"))
      try assertSameObject(ExtensionFsync(path: name, dataOnly: false))
    }
    try assertSameObject(ExtensionEmpty())
    var changes = RemoteAttributeChanges()
    changes.mode = 0o104755
    changes.uid = UInt32.max
    changes.size = 1 << 40
    changes.accessTime = .now
    changes.modificationTime = .set(RemoteTime(seconds: -5, nanoseconds: 999_999_999))
    try assertSameObject(ExtensionSetattr(path: "/f", changes: changes))
    try assertSameObject(ExtensionSetattr(path: "/f", changes: RemoteAttributeChanges()))
  }
}
