import Foundation

/// nginx terminating TLS (HTTP/2 and HTTP/1.1) on a loopback port with a self-signed certificate,
/// proxying to `upstream`, and by host name to `hosts`: a stand-in for E2B's HTTPS edge. curl
/// resolves every `*.localhost` name to loopback, so `api.localhost:PORT` and
/// `49983-ID.localhost:PORT` reach it as they would E2B's domain `localhost:PORT`.
public final class RunningTLSProxy: @unchecked Sendable {
  public let child: ChildProcess
  /// `https://localhost:PORT`.
  public let url: String
  public let port: Int
  /// The self-signed certificate, which is its own CA: what `--ca-file` takes.
  public let certificate: String

  public static var isAvailable: Bool { executableOnPath("nginx") && executableOnPath("openssl") }

  /// Makes the key, certificate and config in `folder`, then starts nginx in the foreground.
  /// `hosts`: names under `localhost` (`api` for `api.localhost`) and their upstreams.
  public init(upstream: String, hosts: [String: String] = [:], folder: String) throws {
    certificate = folder + "/cert.pem"
    let key = folder + "/key.pem"
    let names = ["DNS:localhost", "IP:127.0.0.1"] + hosts.keys.map { "DNS:\($0).localhost" }
    let made = try runCommand([
      "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
      certificate, "-days", "2", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=" + names.joined(separator: ","),
    ])
    guard made.status == 0 else { throw TestSupportError("openssl failed: \(made.error)") }
    let port = try freeLoopbackPort()
    self.port = port
    func server(_ name: String, _ upstream: String, isDefault: Bool) -> String {
      """
        server {
          listen 127.0.0.1:\(port) ssl http2\(isDefault ? " default_server" : "");
          server_name \(name);
          location / {
            proxy_pass \(upstream);
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
          }
        }
      """
    }
    let servers =
      [server("localhost", upstream, isDefault: true)]
      + hosts.map { server("\($0.key).localhost", $0.value, isDefault: false) }
    // master_process off: one process, so stopping the child stops nginx.
    let configuration = """
      daemon off;
      master_process off;
      worker_processes 1;
      pid \(folder)/nginx.pid;
      error_log \(folder)/nginx-error.log;
      events { worker_connections 512; }
      http {
        access_log off;
        client_body_temp_path \(folder)/nginx-body;
        proxy_temp_path \(folder)/nginx-proxy;
        ssl_certificate \(certificate);
        ssl_certificate_key \(key);
        client_max_body_size 0;
      \(servers.joined(separator: "\n"))
      }
      """
    try configuration.write(toFile: folder + "/nginx.conf", atomically: true, encoding: .utf8)
    let child = try ChildProcess(
      executable: "/usr/bin/env",
      arguments: [
        "nginx", "-p", folder, "-c", folder + "/nginx.conf", "-e", folder + "/nginx-error.log",
      ])
    self.child = child
    url = "https://localhost:\(port)"
    let listening = child.waitFor(timeout: 20) {
      !child.isRunning || canConnect(port: port)
    }
    guard listening, child.isRunning else {
      child.stop(grace: 1)
      let log = (try? String(contentsOfFile: folder + "/nginx-error.log", encoding: .utf8)) ?? ""
      throw TestSupportError("nginx did not start: \(child.standardError) \(log)")
    }
  }

  public func stop() { child.stop(grace: 2) }
  deinit { child.stop(grace: 1) }
}

private func executableOnPath(_ name: String) -> Bool {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
  return path.split(separator: ":").contains { access("\($0)/\(name)", X_OK) == 0 }
}

/// A loopback port nothing listens on right now (the kernel's pick for port 0).
public func freeLoopbackPort() throws -> Int {
  let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard descriptor >= 0 else { throw TestSupportError("socket failed") }
  defer { close(descriptor) }
  var address = loopback(port: 0)
  let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
  }
  guard bound == 0 else { throw TestSupportError("bind failed") }
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  _ = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      getsockname(descriptor, $0, &length)
    }
  }
  return Int(UInt16(bigEndian: address.sin_port))
}

private func canConnect(port: Int) -> Bool {
  let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard descriptor >= 0 else { return false }
  defer { close(descriptor) }
  var address = loopback(port: port)
  return withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
    }
  }
}

private func loopback(port: Int) -> sockaddr_in {
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = UInt16(port).bigEndian
  address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
  return address
}
