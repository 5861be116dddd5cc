import Foundation
import TestSupport
import XCTest

/// Signed `/files` URLs as envd checks them: `signature` and `signature_expiration` instead of
/// `X-Access-Token`, over path, operation, username and token.
final class AgentSignedURLTests: AgentTestCase {
  static let token = "s3cret-token"
  override var agentEnvironment: [String: String]? { ["SANDBOX_AGENT_TOKEN": Self.token] }

  /// The SDK's `get_signature`, computed apart from the agent: sha256sum, then unpadded base64.
  func sign(_ path: String, _ operation: String, user: String = "", expiration: Int? = nil) throws
    -> String
  {
    var input = "\(path):\(operation):\(user):\(Self.token)"
    if let expiration { input += ":\(expiration)" }
    let file = try put("signing-input", Data(input.utf8))
    defer { try? FileManager.default.removeItem(atPath: file) }
    let hex = try runCommand(["sha256sum", file]).output.prefix(64)
    var digest: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      digest.append(UInt8(hex[index..<next], radix: 16)!)
      index = next
    }
    let base64 = Data(digest).base64EncodedString()
    return "v1_" + base64.prefix { $0 != "=" }
  }

  func query(_ signature: String, expiration: Int? = nil, user: String? = nil) -> String {
    var text = "&signature=" + AgentClient.encode(signature)
    if let expiration { text += "&signature_expiration=\(expiration)" }
    if let user { text += "&username=\(user)" }
    return text
  }

  var now: Int { Int(Date().timeIntervalSince1970) }

  func testValidSignatureNeedsNoToken() throws {
    let path = "/dir with space/ü.txt"
    try put("dir with space/ü.txt", Data("signed".utf8))
    XCTAssertEqual(try client.download(path, query: query(try sign(path, "read"))).text, "signed")
    let expiration = now + 60
    let later = try client.download(
      path, query: query(try sign(path, "read", expiration: expiration), expiration: expiration))
    XCTAssertEqual(later.status, 200)
    XCTAssertEqual(later.text, "signed")
    let asRoot = try client.download(
      path, query: query(try sign(path, "read", user: "root"), user: "root"))
    XCTAssertEqual(asRoot.status, 200)

    let upload = try client.request(
      "/files?path=\(AgentClient.encode("/up.txt"))"
        + query(try sign("/up.txt", "write", expiration: expiration), expiration: expiration),
      method: "POST", headers: ["Content-Type: application/octet-stream"],
      body: Data("uploaded".utf8))
    XCTAssertEqual(upload.status, 200, upload.text)
    XCTAssertEqual(try String(contentsOfFile: hostPath("up.txt"), encoding: .utf8), "uploaded")
  }

  func testTamperedSignaturesAreInvalid() throws {
    try put("f.txt", Data("x".utf8))
    let good = try sign("/f.txt", "read")
    var flipped = Array(good)
    flipped[5] = flipped[5] == "A" ? "B" : "A"
    let expiration = now + 60
    let cases: [(String, String, String)] = [
      ("/f.txt", "GET", query(String(flipped))),
      ("/f.txt", "GET", query(good + "A")),
      ("/f.txt", "GET", query("")),
      // Signed for another path, user or operation, or without the expiry the URL carries.
      ("/g.txt", "GET", query(good)),
      ("/f.txt", "GET", query(good, user: "root")),
      ("/f.txt", "POST", query(good)),
      ("/f.txt", "GET", query(good, expiration: expiration)),
      ("/f.txt", "GET", query(try sign("/f.txt", "read", expiration: expiration))),
    ]
    for (path, method, signed) in cases {
      let reply = try client.request(
        "/files?path=\(AgentClient.encode(path))\(signed)", method: method,
        headers: ["Content-Type: application/octet-stream"], body: method == "POST" ? Data() : nil)
      XCTAssertEqual(reply.status, 401, "\(method) \(path) \(signed)")
      XCTAssertEqual(
        reply.text, "{\"code\":401,\"message\":\"invalid signature\"}\n", "\(method) \(signed)")
    }
    XCTAssertEqual(try String(contentsOfFile: hostPath("f.txt"), encoding: .utf8), "x")
  }

  func testExpiredSignatureIs401AfterTheSignatureCheck() throws {
    try put("f.txt", Data("x".utf8))
    let past = now - 5
    let expired = try client.download(
      "/f.txt", query: query(try sign("/f.txt", "read", expiration: past), expiration: past))
    XCTAssertEqual(expired.status, 401)
    XCTAssertEqual(
      expired.text, "{\"code\":401,\"message\":\"signature is already expired\"}\n")
    // A wrong signature is reported as such even when expired.
    let both = try client.download(
      "/f.txt", query: query(try sign("/f.txt", "write", expiration: past), expiration: past))
    XCTAssertEqual(both.json["message"] as? String, "invalid signature")
  }

  func testMissingSignatureAndAWrongHeaderWin() throws {
    try put("f.txt", Data("x".utf8))
    let missing = try client.download("/f.txt")
    XCTAssertEqual(missing.status, 401)
    XCTAssertEqual(missing.json["message"] as? String, "missing signature query parameter")
    let onlyExpiry = try client.download("/f.txt", query: "&signature_expiration=\(now + 60)")
    XCTAssertEqual(onlyExpiry.json["message"] as? String, "missing signature query parameter")
    // A header is checked instead of the signature, even a wrong one next to a good signature.
    let wrongHeader = try client.download(
      "/f.txt", headers: ["X-Access-Token: nope"], query: query(try sign("/f.txt", "read")))
    XCTAssertEqual(wrongHeader.status, 401)
    XCTAssertEqual(
      wrongHeader.json["message"] as? String, "access token present in header but does not match")
  }

  func testMalformedExpiryIsOapiCodegens400() throws {
    let reply = try client.download("/f.txt", query: "&signature=x&signature_expiration=soon")
    XCTAssertEqual(reply.status, 400)
    XCTAssertEqual(
      reply.text,
      "Invalid format for parameter signature_expiration: error binding string parameter: strconv.ParseInt: parsing \"soon\": invalid syntax\n"
    )
    let huge = try client.download(
      "/f.txt", query: "&signature=x&signature_expiration=99999999999999999999")
    XCTAssertEqual(huge.status, 400)
    XCTAssertTrue(huge.text.hasSuffix(": value out of range\n"), huge.text)
  }

  func testATokenWithBytesAppendedIsRefused() throws {
    try put("f.txt", Data("x".utf8))
    // 256 bytes more: the old comparison folded only the low byte of the length difference.
    let longer = Self.token + String(repeating: "x", count: 256)
    let reply = try client.download("/f.txt", headers: ["X-Access-Token: \(longer)"])
    XCTAssertEqual(reply.status, 401)
    XCTAssertEqual(
      try client.rpc("Stat", #"{"path":"/"}"#, headers: ["X-Access-Token: \(longer)"]).status, 401)
  }
}

/// Without a token nothing is checked, signatures included.
final class AgentUnsignedTests: AgentTestCase {
  func testSignaturesAreIgnoredWithoutAToken() throws {
    try put("f.txt", Data("open".utf8))
    let reply = try client.download("/f.txt", query: "&signature=v1_bogus&signature_expiration=1")
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.text, "open")
  }
}
