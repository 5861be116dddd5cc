import Backend
import Foundation

/// The token, team and project of a mount, found as Vercel's SDK finds them
/// (`vercel.oidc.get_credentials`): a given token first; else an OIDC token
/// (`VERCEL_OIDC_TOKEN`), whose `owner_id` and `project_id` claims stand in for the team and
/// project not set otherwise; else `VERCEL_TOKEN`. Team and project: the options, else
/// `VERCEL_TEAM_ID` and `VERCEL_PROJECT_ID`, else the token's claims when it is a JWT.
public struct VercelCredentials: Sendable, Equatable {
  public var token: String
  public var teamID: String?
  public var projectID: String?

  public init(token: String, teamID: String?, projectID: String?) {
    self.token = token
    self.teamID = teamID
    self.projectID = projectID
  }

  /// Throws EINVAL (with the variables to set) when there is no token.
  public static func resolve(
    token given: String?, team: String?, project: String?, environment: [String: String]
  ) throws -> VercelCredentials {
    func value(_ key: String) -> String? {
      environment[key].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap {
        $0.isEmpty ? nil : $0
      }
    }
    guard let token = given ?? value("VERCEL_OIDC_TOKEN") ?? value("VERCEL_TOKEN") else {
      throw RemoteError(
        errno: EINVAL,
        "vercel:// needs a token: set VERCEL_TOKEN (with VERCEL_TEAM_ID and VERCEL_PROJECT_ID) or VERCEL_OIDC_TOKEN, or pass --token-file"
      )
    }
    let claims = Self.claims(ofJWT: token)
    return VercelCredentials(
      token: token, teamID: team ?? value("VERCEL_TEAM_ID") ?? claims.team,
      projectID: project ?? value("VERCEL_PROJECT_ID") ?? claims.project)
  }

  /// `owner_id` and `project_id` of a JWT's payload (not verified: Vercel checks the token);
  /// nil for a token that is no JWT.
  static func claims(ofJWT token: String) -> (team: String?, project: String?) {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3 else { return (nil, nil) }
    var base64 = parts[1].replacingOccurrences(of: "-", with: "+")
      .replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    guard let data = Data(base64Encoded: base64),
      let payload = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return (nil, nil) }
    return (payload["owner_id"] as? String, payload["project_id"] as? String)
  }
}
