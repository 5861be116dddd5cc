import Foundation
import TestSupport
import XCTest

/// Acting as the caller (`"caller"`, `Sandbox-Agent-Caller`), device nodes, and paths at
/// Linux's length limits. The agent runs as root here, as the tests do.
final class ExtensionCallerTests: ExtensionTestCase {
  static let nobody = #""caller":{"uid":65534,"gid":65534,"groups":[]}"#

  override func setUpWithError() throws {
    try super.setUpWithError()
    try XCTSkipUnless(geteuid() == 0, "acting as a caller needs a root agent")
    // Callers must be able to walk into the root; "open" is anyone's, "closed" only root's.
    XCTAssertEqual(chmod(root.path, 0o755), 0)
    try makeDirectory("open")
    XCTAssertEqual(chmod(hostPath("open"), 0o777), 0)
    try makeDirectory("closed")
    XCTAssertEqual(chmod(hostPath("closed"), 0o755), 0)
  }

  func testEntriesMadeAsACallerAreTheCallers() throws {
    let file = try client.ext("Create", "{\"path\":\"/open/f\",\"mode\":420,\(Self.nobody)}")
    XCTAssertEqual(file.status, 200, file.text)
    XCTAssertEqual(hostLstat("open/f").st_uid, 65534)
    XCTAssertEqual(hostLstat("open/f").st_gid, 65534)
    XCTAssertEqual(file.attr["uid"] as? Int, 65534)
    XCTAssertEqual(hostLstat("open/f").st_mode, S_IFREG | 0o644)
    let directory = try client.ext("Mkdir", "{\"path\":\"/open/d\",\"mode\":493,\(Self.nobody)}")
    XCTAssertEqual(directory.status, 200, directory.text)
    XCTAssertEqual(hostLstat("open/d").st_uid, 65534)
    XCTAssertEqual(hostLstat("open/d").st_gid, 65534)
    let link = try client.ext(
      "Symlink", "{\"path\":\"/open/l\",\"target\":\"f\",\(Self.nobody)}")
    XCTAssertEqual(link.status, 200, link.text)
    XCTAssertEqual(hostLstat("open/l").st_uid, 65534)
    // Another primary group: the kernel gives the new entry the caller's fsgid.
    let grouped = try client.ext(
      "Create", #"{"path":"/open/g","caller":{"uid":1000,"gid":100,"groups":[100,4000]}}"#)
    XCTAssertEqual(grouped.status, 200, grouped.text)
    XCTAssertEqual(hostLstat("open/g").st_uid, 1000)
    XCTAssertEqual(hostLstat("open/g").st_gid, 100)
  }

  func testACallerWithoutWritePermissionIsRefused() throws {
    let reply = try client.ext("Create", "{\"path\":\"/closed/f\",\(Self.nobody)}")
    assertErrno(reply, "EACCES")
    XCTAssertEqual(reply.json["code"] as? String, "permission_denied")
    XCTAssertFalse(exists("closed/f"))
    assertErrno(try client.ext("Mkdir", "{\"path\":\"/closed/d\",\(Self.nobody)}"), "EACCES")
    // Not the owner: chmod is EPERM, as the kernel says.
    try put("closed/mine", Data())
    assertErrno(
      try client.ext("Setattr", "{\"path\":\"/closed/mine\",\"mode\":511,\(Self.nobody)}"),
      "EPERM")
    XCTAssertEqual(hostLstat("closed/mine").st_mode & 0o777, 0o644)
    // A supplementary group that may write is enough.
    XCTAssertEqual(chown(hostPath("closed"), 0, 4242), 0)
    XCTAssertEqual(chmod(hostPath("closed"), 0o775), 0)
    let member = try client.ext(
      "Create", #"{"path":"/closed/g","caller":{"uid":65534,"gid":65534,"groups":[4242]}}"#)
    XCTAssertEqual(member.status, 200, member.text)
    XCTAssertEqual(hostLstat("closed/g").st_uid, 65534)
  }

  func testASetgidFolderGivesItsGroupThroughTheKernel() throws {
    try makeDirectory("open/shared")
    XCTAssertEqual(chown(hostPath("open/shared"), 0, 4321), 0)
    XCTAssertEqual(chmod(hostPath("open/shared"), 0o2777), 0)
    let file = try client.ext("Create", "{\"path\":\"/open/shared/f\",\(Self.nobody)}")
    XCTAssertEqual(file.status, 200, file.text)
    XCTAssertEqual(hostLstat("open/shared/f").st_uid, 65534)
    XCTAssertEqual(hostLstat("open/shared/f").st_gid, 4321)
    let directory = try client.ext(
      "Mkdir", "{\"path\":\"/open/shared/d\",\"mode\":493,\(Self.nobody)}")
    XCTAssertEqual(directory.status, 200, directory.text)
    let info = hostLstat("open/shared/d")
    XCTAssertEqual(info.st_uid, 65534)
    XCTAssertEqual(info.st_gid, 4321)
    XCTAssertEqual(info.st_mode & 0o7777, 0o2755)
  }

  func testBatchChangesTakeTheirOwnCallerElseTheBatchs() throws {
    try put("open/old", Data("old".utf8))
    XCTAssertEqual(chmod(hostPath("open/old"), 0o644), 0)
    let reply = try client.ext(
      "Batch",
      """
      {"caller":{"uid":65534,"gid":65534},"changes":[
        {"op":"mkdir","path":"/open/a","mode":493},
        {"op":"create","path":"/open/b","caller":{"uid":1234,"gid":1234,"groups":[]}},
        {"op":"put","path":"/open/c","content":"aGk=","caller":{"uid":4321,"gid":4321}},
        {"op":"create","path":"/closed/x"},
        {"op":"put","path":"/open/old","content":"bmV3"},
        {"op":"put","path":"/closed/y","content":"aGk=","caller":{"uid":0,"gid":0}}
      ]}
      """)
    XCTAssertEqual(reply.status, 200, reply.text)
    let results = reply.json["results"] as? [[String: Any]] ?? []
    XCTAssertEqual(results.count, 6, reply.text)
    guard results.count == 6 else { return }
    XCTAssertEqual(hostLstat("open/a").st_uid, 65534)
    XCTAssertEqual(hostLstat("open/b").st_uid, 1234)
    XCTAssertEqual(hostLstat("open/b").st_gid, 1234)
    XCTAssertEqual(hostLstat("open/c").st_uid, 4321)
    XCTAssertEqual(contents("open/c"), Data("hi".utf8))
    XCTAssertEqual((results[3]["error"] as? String)?.hasPrefix("EACCES"), true, reply.text)
    XCTAssertFalse(exists("closed/x"))
    // A root-owned 0644 file: nobody may not replace it, and it keeps its content.
    XCTAssertEqual((results[4]["error"] as? String)?.hasPrefix("EACCES"), true, reply.text)
    XCTAssertEqual(contents("open/old"), Data("old".utf8))
    XCTAssertEqual(hostLstat("closed/y").st_uid, 0)
  }

  func testTheWriteRouteTakesTheCallerHeader() throws {
    try put("open/f", Data("old".utf8))
    XCTAssertEqual(chmod(hostPath("open/f"), 0o644), 0)
    let header = "Sandbox-Agent-Caller: uid=65534;gid=65534;groups="
    assertErrno(try client.writeAt("/open/f", Data("new".utf8), headers: [header]), "EACCES")
    assertErrno(
      try client.writeAt("/open/f", Data("new".utf8), query: "&replace=1", headers: [header]),
      "EACCES")
    XCTAssertEqual(contents("open/f"), Data("old".utf8))
    XCTAssertFalse(
      (try FileManager.default.contentsOfDirectory(atPath: hostPath("open")))
        .contains { $0.contains("sandbox-agent") })
    // Large enough for the streaming route, which switches per chunk on pool threads.
    let large = randomData(300_000)
    assertErrno(
      try client.writeAt("/open/f", large, query: "&replace=1", headers: [header]), "EACCES")
    XCTAssertEqual(contents("open/f"), Data("old".utf8))
    // Writable by the caller's group: allowed, and the replace keeps the owner.
    XCTAssertEqual(chown(hostPath("open/f"), 0, 4242), 0)
    XCTAssertEqual(chmod(hostPath("open/f"), 0o664), 0)
    let member = "Sandbox-Agent-Caller: uid=65534;gid=65534;groups=4242"
    let written = try client.writeAt("/open/f", large, query: "&replace=1", headers: [member])
    XCTAssertEqual(written.status, 200, written.text)
    XCTAssertEqual(contents("open/f"), large)
    XCTAssertEqual(hostLstat("open/f").st_uid, 0)
    XCTAssertEqual(hostLstat("open/f").st_gid, 4242)
    assertErrno(
      try client.writeAt("/open/f", Data(), headers: ["Sandbox-Agent-Caller: uid=x"]), "EINVAL")
  }

  /// The pool threads a caller's calls ran on are root's again: later calls without a caller
  /// may create in a root-only folder, and own what they make.
  func testPoolThreadsAreRootAgainAfterACallersCall() throws {
    let caller = #""caller":{"uid":65534,"gid":65534,"groups":[4242,4343]}"#
    for round in 0..<12 {
      assertErrno(
        try client.ext("Create", "{\"path\":\"/closed/n\(round)\",\(caller)}"), "EACCES")
      let fine = try client.ext("Create", "{\"path\":\"/open/n\(round)\",\(caller)}")
      XCTAssertEqual(fine.status, 200, fine.text)
      // A batch runs on the pool, as every call naming a caller does.
      let plain = try client.ext(
        "Batch", "{\"changes\":[{\"op\":\"create\",\"path\":\"/closed/r\(round)\"}]}")
      XCTAssertEqual(plain.status, 200, plain.text)
      XCTAssertEqual(hostLstat("closed/r\(round)").st_uid, 0)
      XCTAssertEqual(hostLstat("closed/r\(round)").st_gid, 0)
    }
    // Every thread of the agent has the process's credentials again: fsuid and fsgid (the
    // last of each line) and the supplementary groups.
    let tasks = "/proc/\(agent.child.process.processIdentifier)/task"
    func credentials(_ task: String) throws -> [String] {
      try String(contentsOfFile: "\(tasks)/\(task)/status", encoding: .utf8)
        .split(separator: "\n").filter {
          $0.hasPrefix("Uid:") || $0.hasPrefix("Gid:") || $0.hasPrefix("Groups:")
        }.map(String.init)
    }
    let main = try credentials(String(agent.child.process.processIdentifier))
    XCTAssertEqual(main.count, 3)
    for task in try FileManager.default.contentsOfDirectory(atPath: tasks) {
      XCTAssertEqual(try credentials(task), main, "thread \(task)")
    }
  }

  /// An agent not run as root says so, answers `actsAsCaller: false`, and makes what a
  /// caller asks for as itself.
  func testANonRootAgentActsAsItself() throws {
    let folder = try TemporaryDirectory(prefix: "agent-nonroot")
    defer { folder.remove() }
    XCTAssertEqual(chown(folder.path, 65534, 65534), 0)
    let child = try ChildProcess(
      executable: "/usr/bin/setpriv",
      arguments: [
        "--reuid=65534", "--regid=65534", "--clear-groups",
        BuiltProducts.executable("sandbox-agent"), "--listen", "127.0.0.1:0", "--root",
        folder.path,
      ])
    defer { child.stop(grace: 1) }
    var url: String?
    _ = child.waitFor(timeout: 30) {
      if let range = child.standardOutput.range(of: "listening on "),
        let end = child.standardOutput[range.upperBound...].firstIndex(of: "\n")
      {
        url = String(child.standardOutput[range.upperBound..<end])
      }
      return url != nil || !child.isRunning
    }
    let base = try XCTUnwrap(url, child.standardError)
    XCTAssertTrue(
      (child.standardOutput + child.standardError).contains("not running as root"),
      child.standardError)
    func call(_ method: String, _ json: String) throws -> String {
      try runCommand([
        "curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
        json, "\(base)/sandboxagent.v1.Extension/\(method)",
      ]).output
    }
    XCTAssertTrue(try call("Capabilities", "{}").contains(#""actsAsCaller":false"#))
    let created = try call("Create", #"{"path":"/x","caller":{"uid":1234,"gid":1234}}"#)
    XCTAssertTrue(created.contains(#""uid":65534"#), created)
    var info = stat()
    XCTAssertEqual(lstat(folder.path + "/x", &info), 0)
    XCTAssertEqual(info.st_uid, 65534)
  }
}
