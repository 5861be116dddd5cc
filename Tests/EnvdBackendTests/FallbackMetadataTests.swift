import Backend
import EnvdBackend
import Foundation
import TestSupport
import XCTest

/// The same operations against `sandbox-agent --envd-compat` (no extension): envd's primitives
/// and `process.Process/Start` fallbacks.
final class FallbackMetadataTests: XCTestCase {
  private var fixture: AgentFixture!
  private var checks: MetadataChecks!

  override func setUp() async throws {
    fixture = try AgentFixture(arguments: ["--envd-compat"])
    let backend = try await fixture.backend()
    try await backend.verifyConnection()
    checks = MetadataChecks(fixture: fixture, backend: backend, hasExtension: false)
    let capabilities = await backend.capabilities()
    XCTAssertFalse(capabilities.richAttributes)
  }

  override func tearDown() { fixture?.close() }

  func testSetAttributes() async throws { try await checks.setAttributes() }
  func testSymlinks() async throws { try await checks.symlinks() }
  func testHardLinks() async throws { try await checks.hardLinks() }
  func testRenameFlags() async throws { try await checks.renameFlags() }
  func testCreation() async throws { try await checks.creation() }
  func testRemoval() async throws { try await checks.removal() }
  func testStatistics() async throws { try await checks.statistics() }
  func testConcurrentChanges() async throws { try await checks.concurrentChanges() }
  func testFsync() async throws { try await checks.fsync() }

  func testPathsWithShellCharactersStayArguments() async throws {
    let name = "/$(touch pwned); `x` 'q' \"d\" *"
    try fixture.write(name, [1])
    _ = try await checks.backend.setAttributes(name, RemoteAttributeChanges(mode: 0o604))
    XCTAssertEqual(checks.diskStat(name).st_mode & 0o777, 0o604)
    XCTAssertFalse(fixture.exists("/pwned"))
    XCTAssertFalse(FileManager.default.fileExists(atPath: "/pwned"))
    _ = try await checks.backend.createSymlink("/-n", target: "-e $(x)")
    let text = try await checks.backend.readLink("/-n")
    XCTAssertEqual(text, "-e $(x)")
  }

  /// envd gives owner names; the backend turns them into ids with the sandbox's databases, and
  /// an id with no name (printed as the number) into itself.
  func testOwnerNamesBecomeIds() async throws {
    try fixture.write("/named", [1])
    try fixture.write("/unnamed", [1])
    XCTAssertEqual(chown(fixture.path("/named"), 1, 1), 0)  // daemon:daemon on Debian
    XCTAssertEqual(chown(fixture.path("/unnamed"), 4321, 8765), 0)
    let named = try await checks.backend.attributes(of: "/named")
    XCTAssertEqual(named.owner, getpwuid(1).map { String(cString: $0.pointee.pw_name) })
    XCTAssertEqual(named.uid, 1)
    XCTAssertEqual(named.gid, 1)
    let listed = try await checks.backend.listDirectory("/")
    let unnamed = try XCTUnwrap(listed.first { $0.name == "unnamed" }).attributes
    XCTAssertEqual(unnamed.uid, 4321)
    XCTAssertEqual(unnamed.gid, 8765)
  }

  func testDeviceNodesAndSockets() async throws {
    var attributes = try await checks.backend.makeNode(
      "/null", mode: S_IFCHR | 0o640, device: deviceNumber(1, 3)
    ).attributes
    XCTAssertEqual(checks.diskStat("/null").st_mode, S_IFCHR | 0o640)
    XCTAssertEqual(UInt64(checks.diskStat("/null").st_rdev), deviceNumber(1, 3))
    XCTAssertEqual(attributes.type, .characterDevice)
    XCTAssertEqual(attributes.deviceNumber, deviceNumber(1, 3))
    attributes = try await checks.backend.makeNode(
      "/loop", mode: S_IFBLK | 0o600, device: deviceNumber(7, 300)
    ).attributes
    XCTAssertEqual(checks.diskStat("/loop").st_mode, S_IFBLK | 0o600)
    XCTAssertEqual(UInt64(checks.diskStat("/loop").st_rdev), deviceNumber(7, 300))
    await assertRemoteError(EEXIST) {
      try await checks.backend.makeNode("/null", mode: S_IFCHR | 0o600, device: 0)
    }
    attributes = try await checks.backend.makeNode("/sock", mode: S_IFSOCK | 0o604, device: 0)
      .attributes
    XCTAssertEqual(checks.diskStat("/sock").st_mode, S_IFSOCK | 0o604)
    XCTAssertEqual(attributes.type, .socket)
    await assertRemoteError(EEXIST) {
      try await checks.backend.makeNode("/sock", mode: S_IFSOCK | 0o600, device: 0)
    }
    await assertRemoteError(ENOENT) {
      try await checks.backend.makeNode("/none/sock", mode: S_IFSOCK | 0o600, device: 0)
    }
  }

  /// A 4095-byte path below the mount root (the most Linux takes) is longer than PATH_MAX with
  /// the agent's root before it: the processes work relative to the root.
  func testPathsOfLinuxsFullLength() async throws {
    let backend = checks.backend
    let component = String(repeating: "d", count: 255)
    var folder = ""
    for _ in 0..<15 {
      folder += "/" + component
      _ = try await backend.createDirectory(folder, mode: 0o755)
    }
    let deepest = folder + "/" + String(repeating: "f", count: 255)
    XCTAssertEqual(deepest.utf8.count, 4096)
    _ = try await backend.makeNode(deepest, mode: S_IFIFO | 0o644, device: 0)
    let linked = try await backend.link(from: deepest, to: "/short").attributes
    XCTAssertEqual(linked.linkCount, 2)
    XCTAssertEqual(checks.diskStat("/short").st_mode, S_IFIFO | 0o644)
    _ = try await backend.createSymlink(folder + "/l", target: "x")
    let text = try await backend.readLink(folder + "/l")
    XCTAssertEqual(text, "x")
  }

  /// With a non-root caller bound, changes run as that caller: the kernel's ownership and
  /// permission rules, including the sticky bit, which envd's own RPCs (as root) skip.
  func testChangesRunAsTheCaller() async throws {
    let backend = checks.backend
    chmod(fixture.root, 0o755)
    try fixture.makeDirectory("/open")
    chmod(fixture.path("/open"), 0o1777)
    try fixture.makeDirectory("/closed")
    try fixture.write("/open/roots", [1])
    try fixture.write("/open/shared", [1])
    chmod(fixture.path("/open/shared"), 0o6777)
    let nobody = CallerIdentity(uid: 65534, gid: 65534)
    try await CallerIdentity.$current.withValue(nobody) {
      let made = try await backend.createFile("/open/mine", mode: 0o644, exclusive: true)
      XCTAssertEqual(made.attributes.uid, 65534)
      XCTAssertEqual(checks.diskStat("/open/mine").st_uid, 65534)
      let folder = try await backend.createDirectory("/open/dir", mode: 0o755)
      XCTAssertEqual(folder.attributes.uid, 65534)
      await assertRemoteError(EACCES) {
        try await backend.createFile("/closed/f", mode: 0o644, exclusive: true)
      }
      await assertRemoteError(EPERM) {
        try await backend.setAttributes("/open/roots", RemoteAttributeChanges(mode: 0o777))
      }
      await assertRemoteError(EPERM) {
        try await backend.setAttributes("/open/mine", RemoteAttributeChanges(uid: 0))
      }
      // The kernel's clearing of setuid/setgid after another user's write reaches us as a
      // chmod: allowed, where a chmod would not be.
      let cleared = try await backend.setAttributes(
        "/open/shared", RemoteAttributeChanges(mode: 0o777))
      XCTAssertEqual(cleared.permissions, 0o777)
      await assertRemoteError(EPERM) {
        try await backend.setAttributes("/open/shared", RemoteAttributeChanges(mode: 0o700))
      }
      // Sticky folder: not the owner's file.
      await assertRemoteError(EPERM) { try await backend.removeFile("/open/roots") }
      await assertRemoteError(EPERM) {
        try await backend.rename(from: "/open/roots", to: "/open/moved")
      }
      // fsync(2) of an open file checks no permission.
      _ = try await backend.setAttributes("/open/mine", RemoteAttributeChanges(mode: 0))
      try await backend.synchronize("/open/mine", dataOnly: false)
      try await backend.rename(from: "/open/mine", to: "/open/moved")
      _ = try await backend.createDirectory("/open/full", mode: 0o755)
      _ = try await backend.createFile("/open/full/f", mode: 0o644, exclusive: true)
      await assertRemoteError(ENOTEMPTY) {
        try await backend.rename(from: "/open/dir", to: "/open/full")
      }
      await assertRemoteError(ENOTEMPTY) { try await backend.removeDirectory("/open/full") }
      try await backend.removeFile("/open/moved")
      try await backend.removeFile("/open/full/f")
      try await backend.removeDirectory("/open/full")
      try await backend.removeDirectory("/open/dir")
    }
    XCTAssertTrue(fixture.exists("/open/roots"))
    XCTAssertFalse(fixture.exists("/open/moved"))
    XCTAssertFalse(fixture.exists("/closed/f"))
  }
}

/// glibc's makedev (a macro Swift does not import).
private func deviceNumber(_ major: UInt64, _ minor: UInt64) -> UInt64 {
  ((major & 0xFFF) << 8) | (minor & 0xFF) | ((minor & ~0xFF) << 12) | ((major & ~0xFFF) << 32)
}
