import ExecLayer
import XCTest

final class OwnerIdsTests: XCTestCase {
  func testParsesUsersThenGroups() {
    let text = """
      root:x:0:0:root:/root:/bin/bash
      daemon:x:1:1::/:/usr/sbin/nologin
      root:x:7:7:a second root is not the first:/:/bin/sh
      broken line
      nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin
      #groups
      root:x:0:
      staff:x:50:alice,bob
      nogroup:x:65534:
      """
    let (users, groups) = OwnerIds.parse(text)
    XCTAssertEqual(users, ["root": 0, "daemon": 1, "nobody": 65534])
    XCTAssertEqual(groups, ["root": 0, "staff": 50, "nogroup": 65534])
  }
}
