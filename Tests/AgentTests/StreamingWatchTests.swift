import Foundation
import TestSupport
import XCTest

/// filesystem.Filesystem/WatchDir over real HTTP, with changes made on disk in the root.
final class StreamingWatchTests: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-watch")
    agent = try RunningAgent(root: root.path)
  }

  override func tearDownWithError() throws {
    agent?.stop()
    root?.remove()
  }

  private func watch(_ request: String, headers: [String] = [], maxTime: Int = 20) throws
    -> BackgroundStream
  {
    let stream = try BackgroundStream(
      agent, "/filesystem.Filesystem/WatchDir", request, headers: headers, maxTime: maxTime)
    XCTAssertTrue(stream.waitFor { $0.first?.json["start"] != nil }, "start arrives once armed")
    return stream
  }

  func testCreateWriteChmodRemoveEvents() throws {
    try FileManager.default.createDirectory(
      atPath: root.path + "/w", withIntermediateDirectories: true)
    let stream = try watch(#"{"path":"/w"}"#)
    let file = root.path + "/w/a.txt"
    writeInPlace(file, "")
    writeInPlace(file, "hello")
    chmod(file, 0o600)
    try FileManager.default.removeItem(atPath: file)
    XCTAssertTrue(
      stream.waitFor { $0.watchEvents.contains("REMOVE a.txt") }, "\(stream.frames.watchEvents)")
    let events = stream.frames.watchEvents
    for expected in ["CREATE a.txt", "WRITE a.txt", "CHMOD a.txt", "REMOVE a.txt"] {
      XCTAssertTrue(events.contains(expected), "\(expected) in \(events)")
    }
    XCTAssertEqual(events.first, "CREATE a.txt")
    stream.abort()
  }

  /// Changes a moment apart (a `mv` per file, a mount renaming one name after another) go out
  /// in a few writes, not one per change: each write wakes the agent's event loop and the
  /// client (a mount, which then filters out the echoes of its own changes). Counted as the
  /// agent's write syscalls (`/proc/PID/io`).
  func testChangesAMomentApartGoOutInAFewWrites() throws {
    let folder = root.path + "/burst"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    for index in 0..<100 { writeInPlace(folder + "/f\(index)", "") }
    let stream = try watch(#"{"path":"/burst"}"#)
    let before = try agentWriteCalls()
    let start = Date()
    for index in 0..<100 {
      rename(folder + "/f\(index)", folder + "/g\(index)")
      usleep(500)
    }
    let elapsed = Date().timeIntervalSince(start)
    XCTAssertTrue(
      stream.waitFor { $0.watchEvents.filter { $0.hasPrefix("CREATE g") }.count == 100 },
      "\(stream.frames.watchEvents.count) events")
    // At least one write per rename when each went out alone.
    XCTAssertLessThan(try agentWriteCalls() - before, 90, "renames over \(elapsed) s")
    stream.abort()
  }

  private func agentWriteCalls() throws -> Int {
    try XCTUnwrap(processIOCounter("syscw", of: agent.child.process.processIdentifier))
  }

  func testRecursiveWatchSeesNewSubdirectories() throws {
    try FileManager.default.createDirectory(
      atPath: root.path + "/r/old", withIntermediateDirectories: true)
    let stream = try watch(#"{"path":"/r","recursive":true}"#)
    writeInPlace(root.path + "/r/old/x", "1")
    try FileManager.default.createDirectory(
      atPath: root.path + "/r/new", withIntermediateDirectories: true)
    XCTAssertTrue(stream.waitFor { $0.watchEvents.contains("CREATE new") })
    // Give the agent a moment to arm the new directory, then write into it.
    Thread.sleep(forTimeInterval: 0.2)
    writeInPlace(root.path + "/r/new/y", "2")
    XCTAssertTrue(
      stream.waitFor { $0.watchEvents.contains("CREATE new/y") }, "\(stream.frames.watchEvents)")
    XCTAssertTrue(stream.frames.watchEvents.contains("CREATE old/x"))
    stream.abort()
  }

  func testNonRecursiveIgnoresSubdirectoryContents() throws {
    try FileManager.default.createDirectory(
      atPath: root.path + "/n/sub", withIntermediateDirectories: true)
    let stream = try watch(#"{"path":"/n"}"#)
    writeInPlace(root.path + "/n/sub/inner", "")
    writeInPlace(root.path + "/n/top", "")
    XCTAssertTrue(stream.waitFor { $0.watchEvents.contains("CREATE top") })
    XCTAssertFalse(stream.frames.watchEvents.contains { $0.hasSuffix("inner") })
    stream.abort()
  }

  func testIncludeEntry() throws {
    let stream = try watch(#"{"path":"/","includeEntry":true}"#)
    writeInPlace(root.path + "/e.txt", "abc")
    XCTAssertTrue(stream.waitFor { $0.watchEvents.contains("CREATE e.txt") })
    let event = try XCTUnwrap(
      stream.frames.compactMap { $0.json["filesystem"] as? [String: Any] }.first)
    let entry = try XCTUnwrap(event["entry"] as? [String: Any])
    XCTAssertEqual(entry["path"] as? String, "/e.txt")
    XCTAssertEqual(entry["type"] as? String, "FILE_TYPE_FILE")
    stream.abort()
  }

  func testKeepalives() throws {
    let stream = try watch(#"{"path":"/"}"#, headers: ["Keepalive-Ping-Interval: 1"])
    XCTAssertTrue(stream.waitFor(timeout: 5) { $0.contains { $0.json["keepalive"] != nil } })
    stream.abort()
  }

  func testDeadlineEndsTheWatch() throws {
    let stream = try watch(#"{"path":"/"}"#, headers: ["Connect-Timeout-Ms: 700"])
    let frames = stream.finish(timeout: 10)
    XCTAssertEqual(frames.endStream?.errorCode, "deadline_exceeded")
  }

  func testMissingPathAndFileAreRefusedBeforeStart() throws {
    let missing = try ConnectWire.stream(
      agent, "/filesystem.Filesystem/WatchDir", #"{"path":"/nope"}"#)
    XCTAssertEqual(missing.status, 200)
    XCTAssertEqual(missing.frames.count, 1)
    XCTAssertEqual(missing.frames.endStream?.errorCode, "not_found")

    writeInPlace(root.path + "/file", "")
    let file = try ConnectWire.stream(
      agent, "/filesystem.Filesystem/WatchDir", #"{"path":"/file"}"#)
    XCTAssertEqual(file.frames.endStream?.errorCode, "invalid_argument")
  }

  func testWatchIsDroppedWhenTheClientLeaves() throws {
    let stream = try watch(#"{"path":"/"}"#)
    let before = try inotifyCount()
    XCTAssertGreaterThanOrEqual(before, 1)
    stream.abort()
    // The agent notices the closed connection and closes its inotify descriptor.
    XCTAssertTrue(agent.child.waitFor(timeout: 5) { (try? self.inotifyCount()) == before - 1 })
  }

  func testShutdownEndsOpenWatchesWithUnavailable() throws {
    let stream = try watch(#"{"path":"/"}"#)
    kill(agent.child.process.processIdentifier, SIGTERM)
    XCTAssertNotNil(agent.child.waitForExit(timeout: 5), "SIGTERM is not held up by a watch")
    XCTAssertEqual(stream.finish(timeout: 5).endStream?.errorCode, "unavailable")
  }

  func testPollingWatcherCollectsUntilDrainedAndRemoved() throws {
    let created = try ConnectWire.unary(
      agent, "/filesystem.Filesystem/CreateWatcher", #"{"path":"/","recursive":true}"#)
    XCTAssertEqual(created.status, 200, created.text)
    let id = try XCTUnwrap(created.json["watcherId"] as? String)
    XCTAssertTrue(id.hasPrefix("w"))
    writeInPlace(root.path + "/p.txt", "x")
    var names: [String] = []
    let deadline = Date().addingTimeInterval(5)
    while !names.contains("EVENT_TYPE_CREATE p.txt") && Date() < deadline {
      let reply = try ConnectWire.unary(
        agent, "/filesystem.Filesystem/GetWatcherEvents", #"{"watcherId":"\#(id)"}"#)
      XCTAssertEqual(reply.status, 200, reply.text)
      for event in reply.json["events"] as? [[String: Any]] ?? [] {
        names.append("\(event["type"] as? String ?? "") \(event["name"] as? String ?? "")")
      }
      Thread.sleep(forTimeInterval: 0.05)
    }
    XCTAssertTrue(names.contains("EVENT_TYPE_CREATE p.txt"), "\(names)")
    // Drained: nothing new until something changes.
    let empty = try ConnectWire.unary(
      agent, "/filesystem.Filesystem/GetWatcherEvents", #"{"watcherId":"\#(id)"}"#)
    XCTAssertEqual(empty.text, "{}")
    let removed = try ConnectWire.unary(
      agent, "/filesystem.Filesystem/RemoveWatcher", #"{"watcherId":"\#(id)"}"#)
    XCTAssertEqual(removed.text, "{}")
    let gone = try ConnectWire.unary(
      agent, "/filesystem.Filesystem/GetWatcherEvents", #"{"watcherId":"\#(id)"}"#)
    XCTAssertEqual(gone.status, 404)
    XCTAssertEqual(gone.json["code"] as? String, "not_found")
  }

  /// open(2) + write(2): Foundation's writers go through a temporary file and a rename.
  private func writeInPlace(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    XCTAssertGreaterThanOrEqual(fd, 0, path)
    if !text.isEmpty { _ = text.withCString { write(fd, $0, strlen($0)) } }
    close(fd)
  }

  /// inotify descriptors the agent holds open.
  private func inotifyCount() throws -> Int {
    let pid = agent.child.process.processIdentifier
    let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
    return fds.filter {
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)"))?
        .contains("inotify") == true
    }.count
  }
}
