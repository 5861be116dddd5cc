import Foundation

/// A private CA made with openssl for one test run, and a server certificate it signed for
/// `localhost` and 127.0.0.1: what `sandbox-agent --tls-cert/--tls-key` serves and
/// `sandbox-mount --ca-file` trusts. The system's CA store does not know the CA.
public final class TestCertificates: @unchecked Sendable {
  public let folder: TemporaryDirectory
  public var caCertificate: String { folder.path + "/ca.pem" }
  public var serverCertificate: String { folder.path + "/server.pem" }
  public var serverKey: String { folder.path + "/server-key.pem" }
  /// A certificate and key of a CA that signed nothing here: a wrong `--ca-file`.
  public var otherCACertificate: String { folder.path + "/other-ca.pem" }

  public static var isAvailable: Bool {
    (try? runCommand(["openssl", "version"]).status) == 0
  }

  public init() throws {
    folder = try TemporaryDirectory(prefix: "test-ca")
    let path = folder.path
    func openssl(_ arguments: [String]) throws {
      let result = try runCommand(["openssl"] + arguments, currentDirectory: path)
      guard result.status == 0 else {
        throw TestSupportError("openssl \(arguments.first ?? "") failed: \(result.error)")
      }
    }
    for ca in ["ca", "other-ca"] {
      try openssl([
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "\(ca)-key.pem", "-out", "\(ca).pem", "-days", "2", "-subj",
        "/CN=sandbox-mount test CA \(ca)", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      ])
    }
    try openssl([
      "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
      "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost",
    ])
    try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(
      toFile: path + "/server.ext", atomically: true, encoding: .utf8)
    try openssl([
      "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
      "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
    ])
  }

  public func remove() { folder.remove() }
}
