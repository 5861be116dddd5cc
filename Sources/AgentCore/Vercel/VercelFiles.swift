import Foundation
import Glibc
import Hummingbird

/// `fs/read` and `fs/mkdir`'s bodies.
struct VercelPathRequest: Decodable, Sendable {
  var path: String
  var cwd: String?
  var recursive: Bool?
}

extension VercelSandbox {
  /// `fs/read`: the whole file as `application/octet-stream`, streamed from disk.
  func read(_ request: VercelPathRequest) async throws -> Response {
    let path = try Self.resolve(request.path, cwd: request.cwd)
    let jail = services.jail
    let (file, size) = try await services.blocking { try Self.openForRead(path, jail: jail) }
    return Response(
      status: .ok, headers: [.contentType: "application/octet-stream"],
      body: FileStreaming.identityBody(file, start: 0, length: size, services: services))
  }

  private static func openForRead(_ path: ProtocolPath, jail: RootJail) throws -> (
    FileDescriptor, Int
  ) {
    let file = try vercelSystemCall { () throws(SystemError) in
      try jail.open(path, flags: O_RDONLY | O_CLOEXEC, operation: "open")
    }
    let info = try vercelSystemCall { () throws(SystemError) in
      try RootJail.fstat(file, operation: "stat", path: path)
    }
    if info.isDirectory {
      throw VercelError(400, "is_a_directory", "'\(path.requested)' is a directory")
    }
    return (file, Int(info.st_size))
  }

  /// `fs/mkdir`: `recursive` creates the missing parents and accepts an existing directory;
  /// without it the parent must exist (404 `not_found`) and the directory must not.
  func mkdir(_ request: VercelPathRequest) async throws {
    let path = try Self.resolve(request.path, cwd: request.cwd)
    let jail = services.jail
    let user = services.users.defaultUser
    let recursive = request.recursive ?? false
    try await services.blocking {
      if recursive {
        try TarExtraction.ensureDirectories(path, jail: jail, user: user)
        return
      }
      guard !path.isRoot else {
        throw VercelError(409, "file_exists", "'/' already exists")
      }
      try vercelSystemCall { () throws(SystemError) in
        let parent = try jail.open(
          path.parent, flags: LinuxFlags.openPath | O_DIRECTORY, operation: "mkdir")
        guard mkdirat(parent.raw, path.name, 0o755) == 0 else {
          throw SystemError("mkdir", path.requested)
        }
        try jail.chown(parent: parent, name: path.name, path: path, to: user)
      }
    }
  }
}
