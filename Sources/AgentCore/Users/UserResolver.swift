import Foundation
import HTTPTypes

/// Picks the request's user the way envd does: `Authorization: Basic base64(user:)` for RPCs,
/// `?username=` for `/files`, else the default user.
public struct UserResolver: Sendable {
  public let defaultUser: AgentUser

  public init(defaultUser: AgentUser = .current()) {
    self.defaultUser = defaultUser
  }

  /// For Connect RPCs. An unknown name is connect `unauthenticated` "invalid username: 'x'";
  /// a missing or malformed header means the default user (connectrpc/authn's `BasicAuth` not ok).
  public func rpcUser(authorization: String?) throws(ConnectError) -> AgentUser {
    guard let name = Self.basicUsername(authorization) else { return defaultUser }
    guard let user = AgentUser.lookup(name: name) else {
      throw ConnectError(.unauthenticated, "invalid username: '\(name)'")
    }
    return user
  }

  /// For `/files`: an unknown user gives envd's 401 "error looking up user …".
  public func filesUser(username: String?) throws(EnvdHTTPError) -> AgentUser {
    guard let username, !username.isEmpty else { return defaultUser }
    guard let user = AgentUser.lookup(name: username) else {
      throw EnvdHTTPError(
        status: 401, "error looking up user '\(username)': user: unknown user \(username)")
    }
    return user
  }

  /// The user name from a Basic header (password ignored), like Go's `Request.BasicAuth`.
  static func basicUsername(_ header: String?) -> String? {
    guard let header, header.count > 6, header.prefix(6).lowercased() == "basic " else {
      return nil
    }
    guard let data = Data(base64Encoded: String(header.dropFirst(6))),
      let decoded = String(data: data, encoding: .utf8),
      let colon = decoded.firstIndex(of: ":")
    else { return nil }
    return String(decoded[..<colon])
  }
}
