import HummingbirdTLS
import NIOSSL

/// The agent's certificate chain and key (`--tls-cert`, `--tls-key`), read once at start: a bad
/// file stops the start instead of failing every handshake later.
public struct AgentTLS: Sendable {
  public let certificateFile: String
  public let keyFile: String
  let certificateChain: [NIOSSLCertificate]
  let privateKey: NIOSSLPrivateKey

  public init(certificateFile: String, keyFile: String) throws(AgentTLSError) {
    self.certificateFile = certificateFile
    self.keyFile = keyFile
    do {
      certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile)
    } catch {
      throw AgentTLSError("cannot load the TLS certificate \(certificateFile): \(error)")
    }
    guard !certificateChain.isEmpty else {
      throw AgentTLSError("the TLS certificate file \(certificateFile) holds no PEM certificate")
    }
    do {
      privateKey = try NIOSSLPrivateKey(file: keyFile, format: .pem)
    } catch {
      throw AgentTLSError("cannot load the TLS key \(keyFile): \(error)")
    }
    // A key of another certificate would only fail at the first handshake.
    var configuration = serverConfiguration
    configuration.applicationProtocols = []
    do {
      _ = try NIOSSLContext(configuration: configuration)
    } catch {
      throw AgentTLSError(
        "the TLS key \(keyFile) does not match the certificate \(certificateFile): \(error)")
    }
  }

  /// HTTP/1.1 over TLS 1.2 or later.
  var serverConfiguration: TLSConfiguration {
    var configuration = TLSConfiguration.makeServerConfiguration(
      certificateChain: certificateChain.map { .certificate($0) },
      privateKey: .privateKey(privateKey))
    configuration.minimumTLSVersion = .tlsv12
    configuration.applicationProtocols = ["http/1.1"]
    return configuration
  }
}

public struct AgentTLSError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
