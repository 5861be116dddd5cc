import Foundation
import TestSupport
import XCTest

/// Capabilities, the error convention, and the Connect plumbing shared with envd's RPCs.
final class ExtensionDiscoveryTests: ExtensionTestCase {
  func testCapabilitiesListsEveryMethodAndTheWriteRoute() throws {
    let reply = try client.ext("Capabilities", "{}")
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.headers["content-type"], "application/json")
    XCTAssertEqual(reply.json["version"] as? Int, 1)
    XCTAssertEqual(reply.json["write"] as? String, "/sandboxagent/v1/files")
    XCTAssertEqual(reply.json["actsAsCaller"] as? Bool, geteuid() == 0)
    XCTAssertEqual(
      Set(reply.json["methods"] as? [String] ?? []),
      [
        "Batch", "Capabilities", "Counters", "Create", "Fsync", "Link", "ListDir", "Mkdir", "Mknod",
        "Readlink", "Rename", "Rmdir", "Setattr", "Stat", "Statfs", "Symlink", "Unlink",
      ])
  }

  func testErrorIsConnectJSONWithTheErrnoNameFirst() throws {
    let reply = try client.ext("Stat", #"{"path":"/missing"}"#)
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(reply.headers["content-type"], "application/json")
    XCTAssertEqual(reply.json["code"] as? String, "not_found")
    XCTAssertEqual(reply.json["message"] as? String, "ENOENT: no such file or directory: /missing")
    let exists = try client.ext("Mkdir", #"{"path":"/"}"#)
    XCTAssertEqual(exists.status, 409)
    XCTAssertEqual(exists.json["code"] as? String, "already_exists")
    XCTAssertEqual(exists.errnoName, "EEXIST")
  }

  func testConnectLayerErrorsHaveNoErrnoPrefix() throws {
    let malformed = try client.ext("Stat", "{not json")
    XCTAssertEqual(malformed.status, 400)
    XCTAssertEqual(malformed.json["code"] as? String, "invalid_argument")
    XCTAssertTrue((malformed.json["message"] as? String ?? "").hasPrefix("unmarshal message"))
    let empty = try client.ext("Stat", "")
    XCTAssertEqual(empty.json["code"] as? String, "invalid_argument")
    let wrongType = try client.request(
      "/sandboxagent.v1.Extension/Stat", method: "POST", headers: ["Content-Type: text/plain"],
      body: Data(#"{"path":"/"}"#.utf8))
    XCTAssertEqual(wrongType.status, 415)
  }

  func testMissingPathIsEINVAL() throws {
    assertErrno(try client.ext("Stat", "{}"), "EINVAL")
    assertErrno(try client.ext("Rename", #"{"from":"/a"}"#), "EINVAL")
  }

  func testUnknownBasicUserIsUnauthenticated() throws {
    let basic = "Authorization: Basic " + Data("no-such-user-xyz:".utf8).base64EncodedString()
    let reply = try client.ext("Stat", #"{"path":"/"}"#, headers: [basic])
    XCTAssertEqual(reply.status, 401)
    XCTAssertEqual(reply.json["code"] as? String, "unauthenticated")
  }

  func testRequestsMayBeGzipped() throws {
    let folder = try TemporaryDirectory(prefix: "ext-gzip")
    defer { folder.remove() }
    try Data(#"{"path":"/"}"#.utf8).write(to: URL(fileURLWithPath: folder.path + "/body"))
    XCTAssertEqual(try runCommand(["gzip", "-k", folder.path + "/body"]).status, 0)
    let reply = try client.request(
      "/sandboxagent.v1.Extension/Stat", method: "POST",
      headers: ["Content-Type: application/json", "Content-Encoding: gzip"],
      bodyFile: folder.path + "/body.gz")
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual((reply.attr["mode"] as? Int).map { mode_t($0) & S_IFMT }, S_IFDIR)
  }
}

/// `--envd-compat`: the extension is gone; its paths answer like any unknown path.
final class ExtensionEnvdCompatTests: ExtensionTestCase {
  override var agentArguments: [String] { ["--envd-compat"] }

  func testCapabilitiesIs404LikeAnUnknownPath() throws {
    let capabilities = try client.ext("Capabilities", "{}")
    let unknown = try client.rpc("Capabilities", "{}", service: "nothing.v1.Here")
    XCTAssertEqual(capabilities.status, 404)
    XCTAssertEqual(capabilities.text, "404 page not found\n")
    XCTAssertEqual(capabilities.text, unknown.text)
    XCTAssertEqual(capabilities.headers["content-type"], unknown.headers["content-type"])
    XCTAssertEqual(try client.ext("Stat", #"{"path":"/"}"#).status, 404)
    XCTAssertEqual(try client.ext("Unlink", #"{"path":"/f"}"#).status, 404)
  }

  func testOffsetWriteRouteIs404AndWritesNothing() throws {
    try put("f", Data("0123456789".utf8))
    let reply = try client.writeAt("/f", Data("XX".utf8), query: "&offset=2")
    XCTAssertEqual(reply.status, 404)
    XCTAssertEqual(reply.text, "404 page not found\n")
    XCTAssertEqual(contents("f"), Data("0123456789".utf8))
  }

  func testEnvdRoutesStillWork() throws {
    try put("f", Data("x".utf8))
    XCTAssertEqual(try client.rpc("Stat", #"{"path":"/f"}"#).status, 200)
  }
}

/// With a token, the extension is guarded exactly like envd's RPCs.
final class ExtensionAuthTests: ExtensionTestCase {
  override var agentEnvironment: [String: String]? { ["SANDBOX_AGENT_TOKEN": "ext-token"] }

  func testWrongOrMissingTokenIsEnvd401() throws {
    for headers in [[], ["X-Access-Token: ext-tokeN"]] {
      let reply = try client.ext("Capabilities", "{}", headers: headers)
      XCTAssertEqual(reply.status, 401)
      XCTAssertEqual(reply.json["code"] as? Int, 401)
      XCTAssertEqual(
        reply.json["message"] as? String,
        "unauthorized access, please provide a valid access token or method signing if supported")
    }
    try put("f", Data("0123".utf8))
    let write = try client.writeAt("/f", Data("X".utf8), headers: ["X-Access-Token: nope"])
    XCTAssertEqual(write.status, 401)
    XCTAssertEqual(contents("f"), Data("0123".utf8))
    XCTAssertEqual(try client.ext("Unlink", #"{"path":"/f"}"#).status, 401)
    XCTAssertTrue(exists("f"))
  }

  func testGoodTokenWorks() throws {
    let good = ["X-Access-Token: ext-token"]
    XCTAssertEqual(try client.ext("Capabilities", "{}", headers: good).status, 200)
    try put("f", Data("0123".utf8))
    XCTAssertEqual(try client.writeAt("/f", Data("X".utf8), headers: good).status, 200)
    XCTAssertEqual(contents("f"), Data("X123".utf8))
  }
}
