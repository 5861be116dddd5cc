import Backend
import DataLayer
import Foundation
import Logging
import TestSupport
import XCTest

@testable import FilesystemCore

/// Failures of the local disk under the staging files reach the caller as `LocalError`: the
/// local errno, a message naming the local file, logged at error level, never mistaken for the
/// sandbox's answer.
final class LocalErrorTests: XCTestCase {
  private let root = InodeTable.rootInode

  private func filesystem(stagingIn folder: String) throws -> Filesystem {
    try Filesystem(
      backend: InMemoryRemoteFilesystem(), capabilities: InMemoryRemoteFilesystem.allCapabilities,
      configuration: FilesystemConfiguration(stagingParent: folder),
      logger: Logger(label: "local-error-tests") { _ in SwiftLogNoOpLogHandler() })
  }

  func testAFullStagingDiskIsALocalENOSPC() async throws {
    let disk = try SmallDisk(size: "1m")
    defer { disk.remove() }
    let filesystem = try filesystem(stagingIn: disk.path)
    defer { filesystem.shutdown() }
    let (_, opened) = try await filesystem.create(
      parent: root, name: "big", mode: 0o644, flags: O_WRONLY)
    let chunk = [UInt8](repeating: 1, count: 128 << 10)
    do {
      for index in 0..<32 {
        _ = try chunk.withUnsafeBytes {
          try filesystem.write(
            handle: opened.handle, bytes: $0, offset: UInt64(index * chunk.count))
        }
      }
      XCTFail("4 MiB fit on a 1 MiB staging disk")
    } catch {
      XCTAssertEqual(errnoCode(for: error), ENOSPC)
      XCTAssertEqual(logLevel(for: error), .error)
      let local = try XCTUnwrap(error as? LocalError, "\(type(of: error)): \(error)")
      XCTAssertEqual(local.operation, "write")
      XCTAssertTrue(local.description.hasPrefix("local disk: "), local.description)
      XCTAssertTrue(local.description.contains("staging file"), local.description)
      XCTAssertTrue(local.description.contains(disk.path), local.description)
    }
    try await filesystem.release(handle: opened.handle)
  }

  func testAVanishedStagingFolderFailsTheCreateWithItsName() async throws {
    let folder = try TemporaryDirectory(prefix: "core-staging")
    let filesystem = try filesystem(stagingIn: folder.path)
    defer { filesystem.shutdown() }
    folder.remove()
    do {
      _ = try await filesystem.create(parent: root, name: "new", mode: 0o644, flags: O_WRONLY)
      XCTFail("a create without a staging folder succeeded")
    } catch {
      XCTAssertEqual(errnoCode(for: error), ENOENT)
      XCTAssertEqual(logLevel(for: error), .error, "ENOENT of the local folder is no answer")
      let local = try XCTUnwrap(error as? LocalError, "\(type(of: error)): \(error)")
      XCTAssertTrue(local.description.contains(folder.path), local.description)
    }
  }

  func testTheLevelComesFromTheError() {
    XCTAssertEqual(logLevel(for: RemoteError(errno: ENOENT, "no such file")), .debug)
    XCTAssertEqual(logLevel(for: RemoteError(errno: ENOSPC, "the sandbox is full")), .debug)
    XCTAssertEqual(logLevel(for: RemoteError(errno: EIO, "connection reset")), .warning)
    XCTAssertEqual(logLevel(for: RemoteError(errno: ETIMEDOUT, "timed out")), .warning)
    XCTAssertEqual(
      logLevel(for: RemoteError(errno: EINVAL, "a reply not understood", kind: .failure)),
      .warning)
    XCTAssertEqual(
      logLevel(for: RemoteError(errno: EIO, "its disk says EIO", kind: .answer)), .debug)
    XCTAssertEqual(logLevel(for: LocalError(errno: ENOSPC, "write", "a staging file")), .error)
    XCTAssertEqual(logLevel(for: CancellationError()), .debug)
    XCTAssertEqual(logLevel(for: CocoaError(.fileReadUnknown)), .warning)

    // The same errno, told apart by where it came from.
    let local = LocalError(errno: ENOSPC, "write", "staging file (fd 7) in /var/tmp")
    let remote = RemoteError(errno: ENOSPC, "/data/out: no space left on the sandbox")
    XCTAssertEqual(errnoCode(for: local), errnoCode(for: remote))
    XCTAssertEqual(
      local.description,
      "local disk: write of staging file (fd 7) in /var/tmp failed: No space left on device (errno 28)"
    )
    XCTAssertFalse(remote.description.contains("local"))
  }
}
