import Foundation
import TestSupport
import XCTest

/// Write-back (the default): changes are done once journaled on local disk, reach the agent in
/// the background, survive `kill -9` of the daemon and of the agent, and `sync` waits for them.
class WriteBackTests: MountTestCase {
  // Long cache timeouts: while the agent is stopped, nothing may need it but the drain.
  override var mountArguments: [String] {
    ["--attr-timeout", "60", "--entry-timeout", "60", "--negative-timeout", "60"]
  }

  override var syncsBeforeEachCommand: Bool { false }
  // One line per request, for the counts below.
  override var agentArguments: [String] { ["--log-level", "debug"] }

  var stateDirectory: String { mountpoint + ".state" }

  /// A tree of `count` files of 100 B to 16 KiB in folders of 10, in scratch/src.
  func makeSource(_ count: Int) throws {
    try sh(
      """
      python3 - <<'EOF'
      import os, random
      random.seed(7)
      for i in range(\(count)):
          folder = "scratch/src/d%d/e%d" % (i // 100, (i // 10) % 10)
          os.makedirs(folder, exist_ok=True)
          with open("%s/f%d" % (folder, i), "wb") as f:
              f.write(os.urandom(random.randint(100, 16000)))
          os.utime("%s/f%d" % (folder, i), (1500000000 + i, 1500000000 + i))
      EOF
      """)
  }

  func sandboxMount(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let result = try runCommand(
      [BuiltProducts.executable("sandbox-mount")] + arguments, timeout: 120)
    return (result.status, result.output + result.error)
  }

  func status() throws -> [String: Any] {
    let reply = try sandboxMount(["status", mountpoint, "--json"])
    XCTAssertEqual(reply.status, 0, reply.output)
    return (try JSONSerialization.jsonObject(with: Data(reply.output.utf8))) as? [String: Any]
      ?? [:]
  }

  func pause(_ agent: RunningAgent) { kill(agent.child.process.processIdentifier, SIGSTOP) }
  func resume(_ agent: RunningAgent) { kill(agent.child.process.processIdentifier, SIGCONT) }

  /// rsync into the mount finishes while the agent cannot answer at all; the agent's folder
  /// gets the tree only after it is back, and `sandbox-mount sync` returns once it has it.
  func testRsyncIsDoneLocallyAndSyncWaitsForTheSandbox() throws {
    try makeSource(300)
    try sh("mkdir mnt/dst && ls -la mnt mnt/dst >/dev/null")
    pause(agent)
    defer { resume(agent) }
    try sh("rsync -a scratch/src/ mnt/dst/", timeout: 60)
    XCTAssertEqual(try sh("diff -r scratch/src mnt/dst && echo same"), "same\n")
    XCTAssertGreaterThan(try status()["pendingChanges"] as? Int ?? 0, 300)
    XCTAssertNotEqual(try shStatus("diff -r scratch/src root/dst").status, 0)
    resume(agent)
    let synced = try sandboxMount(["sync", mountpoint])
    XCTAssertEqual(synced.status, 0, synced.output)
    XCTAssertEqual(try sh("diff -r scratch/src root/dst && echo same"), "same\n")
    // Times and modes arrived with the contents: the sandbox shows what the mount showed.
    XCTAssertEqual(
      try sh(
        """
        (cd scratch/src && find . -type f -printf '%p %T@ %m\\n' | sort) > scratch/want
        (cd root/dst && find . -type f -printf '%p %T@ %m\\n' | sort) > scratch/got
        (cd mnt/dst && find . -printf '%p %y %T@ %m\\n' | sort) > scratch/mounted
        (cd root/dst && find . -printf '%p %y %T@ %m\\n' | sort) > scratch/backing
        diff scratch/want scratch/got && diff scratch/mounted scratch/backing && echo same
        """), "same\n")
    XCTAssertEqual(try status()["pendingChanges"] as? Int, 0)
    XCTAssertEqual(try sh("find root -name '.*' | wc -l"), "0\n", "temporary files left")
  }

  /// Agent requests logged so far that contain `name`.
  func agentRequests(_ name: String) -> Int {
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    return agent.child.standardError.components(separatedBy: "\n")
      .filter { $0.contains("POST /") && $0.contains(name) }.count
  }

  /// A rename of a file the sandbox has is one Rename there and nothing more: the folder's new
  /// mtime comes with the answer. (It once also journaled an mtime change of the folder, which
  /// the next rename waited to drain: three times the cost of a rename.)
  func testRenameOfASandboxFileIsOneRequest() throws {
    try sh("mkdir root/r && for i in $(seq 1 20); do echo $i > root/r/f$i; done")
    try sh("ls -l mnt/r > /dev/null")
    let (renames, batches) = (agentRequests("/Rename"), agentRequests("/Batch"))
    try sh("for i in $(seq 1 20); do mv mnt/r/f$i mnt/r/g$i; done")
    let synced = try sandboxMount(["sync", mountpoint])
    XCTAssertEqual(synced.status, 0, synced.output)
    XCTAssertEqual(agentRequests("/Rename") - renames, 20)
    XCTAssertEqual(agentRequests("/Batch") - batches, 0)
    XCTAssertEqual(
      try sh("ls root/r | sort -V | tr '\\n' ' '"), (1...20).map { "g\($0) " }.joined())
  }

  /// An fsync of a folder whose entries this mount did not change has nothing of ours to make
  /// durable: after the (empty) journal it is answered without a round trip, also after an
  /// edit in place of a file in it. A folder whose entries changed is synced there once.
  /// (Each once went to the sandbox: 0.6-0.9 ms after every small edit.)
  func testFsyncOfAFolderWhoseEntriesDidNotChangeStaysLocal() throws {
    try sh("mkdir root/quiet root/busy && head -c 1048576 /dev/urandom > root/quiet/big")
    try sh("ls -l mnt/quiet mnt/busy > /dev/null")
    let fsyncs = agentRequests("/Fsync")
    try sh("echo more >> mnt/quiet/big && sync mnt/quiet && sync mnt")
    XCTAssertEqual(agentRequests("/Fsync") - fsyncs, 0)
    try sh("echo new > mnt/busy/g && sync mnt/busy && sync mnt/busy")
    XCTAssertEqual(agentRequests("/Fsync") - fsyncs, 1)
    XCTAssertEqual(try sh("tail -c 5 root/quiet/big; cat root/busy/g"), "more\nnew\n")
  }

  /// An edit of a file the sandbox has, in a folder this mount never listed (a fresh mount's
  /// `dd conv=notrunc` or `>>`: O_CREAT opens), lists no folder: a stat and the write. (It once
  /// listed every folder up to the root first: two round trips more at any latency.)
  func testAnEditOfASandboxFileListsNoFolder() throws {
    try sh("mkdir -p root/deep/er && head -c 1048576 /dev/urandom > root/deep/er/big")
    try sh("cp root/deep/er/big scratch/expected && stat mnt/deep/er > /dev/null")
    let listings = agentRequests("ListDir")
    try sh(
      """
      printf 'abcd' | dd of=mnt/deep/er/big bs=1 seek=4096 conv=notrunc status=none
      printf 'abcd' | dd of=scratch/expected bs=1 seek=4096 conv=notrunc status=none
      echo more >> mnt/deep/er/big && echo more >> scratch/expected
      """)
    XCTAssertEqual(agentRequests("ListDir") - listings, 0)
    XCTAssertEqual(try sh("cmp root/deep/er/big scratch/expected && echo same"), "same\n")
  }

  /// kill -9 of the daemon right after rsync returns, before anything reached the agent: the
  /// next mount of the same sandbox replays the journal, and the result is whole, with nothing
  /// duplicated or left over.
  func testKillNineBeforeTheDrainLosesNothing() throws {
    try makeSource(2000)
    try sh("mkdir mnt/dst && ls -la mnt mnt/dst >/dev/null")
    pause(agent)
    try sh("rsync -a scratch/src/ mnt/dst/", timeout: 120)
    kill(mount.child.process.processIdentifier, SIGKILL)
    _ = mount.child.waitForExit(timeout: 10)
    _ = try runCommand(["fusermount3", "-uz", mountpoint], timeout: 20)
    resume(agent)
    XCTAssertNotEqual(try shStatus("diff -r scratch/src root/dst").status, 0)

    mount = nil
    mount = try RunningMount(url: agent.url, mountpoint: mountpoint, arguments: mountArguments)
    XCTAssertTrue(mount.child.standardError.contains("replaying"), mount.child.standardError)
    let synced = try sandboxMount(["sync", mountpoint])
    XCTAssertEqual(synced.status, 0, synced.output)
    XCTAssertEqual(try sh("diff -r scratch/src root/dst && echo same"), "same\n")
    XCTAssertEqual(try sh("find root -name '.*' | wc -l"), "0\n", "temporary files left")
    XCTAssertEqual(try sh("find root/dst -type f | wc -l"), "2000\n")
  }

  /// The agent killed while the journal drains, and started again: the drain retries and the
  /// result is the same.
  func testAgentKilledMidDrainAndRestarted() throws {
    try makeSource(1000)
    try sh("mkdir mnt/dst && ls -la mnt mnt/dst >/dev/null")
    try sh("rsync -a scratch/src/ mnt/dst/", timeout: 120)
    kill(agent.child.process.processIdentifier, SIGKILL)
    _ = agent.child.waitForExit(timeout: 10)
    Thread.sleep(forTimeInterval: 1)
    try sandbox.restartAgent()
    let synced = try sandboxMount(["sync", mountpoint])
    XCTAssertEqual(synced.status, 0, synced.output)
    XCTAssertEqual(try sh("diff -r scratch/src root/dst && echo same"), "same\n")
    XCTAssertEqual(try sh("find root -name '.*' | wc -l"), "0\n", "temporary files left")
  }

  /// fsync returns once the agent's folder holds the bytes, and everything before them.
  func testFsyncWaitsForTheSandbox() throws {
    try sh(
      """
      python3 - <<'EOF'
      import os
      os.mkdir("mnt/before")
      with open("mnt/before/first", "w") as f:
          f.write("first")
      fd = os.open("mnt/file", os.O_WRONLY | os.O_CREAT, 0o640)
      os.write(fd, b"durable bytes")
      os.fsync(fd)
      assert open("root/file").read() == "durable bytes", "the agent's folder lacks the bytes"
      assert open("root/before/first").read() == "first", "an earlier change is missing"
      os.close(fd)
      EOF
      """)
  }

  /// coreutils `sync MOUNTPOINT` is a sync too: it fsyncs the mountpoint.
  func testCoreutilsSyncOfTheMountpointDrains() throws {
    try sh("echo first > mnt/first")
    pause(agent)
    try sh("echo hello > mnt/greeting")
    resume(agent)
    try sh("sync mnt")
    XCTAssertEqual(try sh("cat root/greeting"), "hello\n")
  }

  /// A file changed inside the sandbox after this mount last read it is not overwritten: ours
  /// goes next to it as NAME.sandbox-mount-conflict-TIMESTAMP, and `status` says so.
  func testAChangeInTheSandboxMeanwhileKeepsBothVersions() throws {
    try sh("echo first > mnt/notes.txt && sync mnt")
    pause(agent)
    try sh("echo ours > mnt/notes.txt")
    try sh("echo theirs, longer > root/notes.txt")
    resume(agent)
    let synced = try sandboxMount(["sync", mountpoint])
    XCTAssertEqual(synced.status, 0, synced.output)
    XCTAssertEqual(try sh("cat root/notes.txt"), "theirs, longer\n")
    XCTAssertEqual(try sh("cat root/notes.txt.sandbox-mount-conflict-*"), "ours\n")
    let conflicts = try status()["conflicts"] as? [String] ?? []
    XCTAssertEqual(conflicts.count, 1, "\(conflicts)")
    XCTAssertTrue(mount.child.standardError.contains("kept theirs"), mount.child.standardError)
  }

  /// Unmounting drains what is left before the daemon exits.
  func testUnmountDrainsTheJournal() throws {
    try makeSource(200)
    try sh("mkdir mnt/dst && rsync -a scratch/src/ mnt/dst/")
    mount.unmount()
    XCTAssertEqual(try sh("diff -r scratch/src root/dst && echo same"), "same\n")
  }

  /// Two daemons never share a journal.
  func testASecondMountOfTheSameStateFolderIsRefused() throws {
    let other = workDirectory.path + "/other"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    let second = try runCommand(
      [
        BuiltProducts.executable("sandbox-mount"), agent.url, other, "-f", "--state-dir",
        stateDirectory,
      ], timeout: 30)
    XCTAssertNotEqual(second.status, 0)
    XCTAssertTrue(second.error.contains("in use by another sandbox-mount"), second.error)
  }
}

/// A full disk in the sandbox: the change is refused for good, parked, shown by `status`, its
/// data kept locally until `sync --discard-failed`; `sync` says what failed.
final class WriteBackFullDiskTests: XCTestCase {
  private var sandbox: MountedSandbox?
  private var tmpfs: String?

  override func tearDown() {
    sandbox?.mount?.unmount()
    sandbox?.mount = nil
    sandbox?.agent?.stop()
    if let tmpfs { _ = try? runCommand(["umount", "-l", tmpfs], timeout: 20) }
    sandbox?.close()
    sandbox = nil
    super.tearDown()
  }

  func testRefusedChangeIsParkedAndKeptLocally() throws {
    let sandbox = try MountedSandbox(prefix: "writeback-enospc")
    self.sandbox = sandbox
    let mounted = try runCommand(
      ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", sandbox.root], timeout: 20)
    guard mounted.status == 0 else { throw XCTSkip("cannot mount a tmpfs: \(mounted.error)") }
    tmpfs = sandbox.root
    try sandbox.start()
    let mountpoint = sandbox.mountpoint
    let tool = BuiltProducts.executable("sandbox-mount")
    // 3 MiB into a 1 MiB sandbox: close succeeds (journaled), the drain is refused.
    let written = try runCommand(
      [
        "/bin/sh", "-c",
        "head -c 3145728 /dev/urandom > \(mountpoint)/big && echo small > \(mountpoint)/small",
      ],
      timeout: 60)
    XCTAssertEqual(written.status, 0, written.error)
    let synced = try runCommand([tool, "sync", mountpoint], timeout: 60)
    XCTAssertNotEqual(synced.status, 0)
    XCTAssertTrue(synced.error.contains("/big"), synced.error)
    let status = try runCommand([tool, "status", mountpoint], timeout: 30)
    XCTAssertTrue(status.output.contains("failures:    1"), status.output)
    XCTAssertEqual(
      try runCommand(["cat", sandbox.root + "/small"], timeout: 10).output, "small\n")
    // The data stays readable through the mount.
    XCTAssertEqual(
      try runCommand(["stat", "-c", "%s", mountpoint + "/big"], timeout: 10).output, "3145728\n")
    let discarded = try runCommand([tool, "sync", "--discard-failed", mountpoint], timeout: 60)
    XCTAssertEqual(discarded.status, 0, discarded.error)
    // The sandbox keeps what it had: the empty file the create made, never a cut copy.
    let remote = try runCommand(["stat", "-c", "%s", sandbox.root + "/big"], timeout: 10)
    XCTAssertTrue(remote.status != 0 || remote.output == "0\n", remote.output)
  }
}

/// Write-back against stock envd (`--envd-compat`): the drain batches there too, the small files'
/// bytes in one multipart upload and the rest in processes of many changes each.
/// Every write-back test above runs here too.
final class StockWriteBackTests: WriteBackTests {
  override var agentArguments: [String] { ["--log-level", "debug", "--envd-compat"] }

  override func testRenameOfASandboxFileIsOneRequest() throws {
    throw XCTSkip("counts the extension's Rename method")
  }

  override func testFsyncOfAFolderWhoseEntriesDidNotChangeStaysLocal() throws {
    throw XCTSkip("counts the extension's Fsync method")
  }

  private func requests(_ name: String) -> Int {
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    return agent.child.standardError.components(separatedBy: "\n")
      .filter { $0.contains("POST /") && $0.contains(name) }.count
  }

  /// A small file rewritten through the mount is uploaded beside it and renamed over it: it
  /// keeps its owner and group (it once became envd's user's).
  func testARewrittenFileKeepsItsOwner() throws {
    try sh("echo old > root/f && chown 4321:8765 root/f && chmod 4750 root/f && cat mnt/f")
    try sh("echo new > mnt/f")
    let synced = try runCommand(
      [BuiltProducts.executable("sandbox-mount"), "sync", mountpoint], timeout: 60)
    XCTAssertEqual(synced.status, 0, synced.output + synced.error)
    XCTAssertEqual(try sh("cat root/f && stat -c '%u %g %a' root/f"), "new\n4321 8765 4750\n")
  }

  func testRsyncDrainsInAFewRequests() throws {
    try sh(
      """
      python3 - <<'PY'
      import os, random
      random.seed(11)
      for i in range(300):
          folder = "scratch/src/d%d" % (i // 10)
          os.makedirs(folder, exist_ok=True)
          with open("%s/f%d" % (folder, i), "wb") as f:
              f.write(os.urandom(random.randint(0, 9000)))
          os.chmod("%s/f%d" % (folder, i), 0o600 + (i % 2) * 0o44)
          os.utime("%s/f%d" % (folder, i), (1500000000 + i, 1500000000 + i))
      PY
      """)
    try sh("mkdir mnt/dst && ls mnt/dst")
    let (uploads, processes) = (requests("POST /files "), requests("Process/Start"))
    try sh("rsync -a scratch/src/ mnt/dst/", timeout: 120)
    let synced = try runCommand(
      [BuiltProducts.executable("sandbox-mount"), "sync", mountpoint], timeout: 120)
    XCTAssertEqual(synced.status, 0, synced.output + synced.error)
    XCTAssertEqual(
      try sh(
        """
        diff -r scratch/src root/dst && \
        (cd scratch/src && find . -type f -printf '%p %T@ %m\\n' | sort) > scratch/want && \
        (cd root/dst && find . -type f -printf '%p %T@ %m\\n' | sort) > scratch/got && \
        (cd mnt/dst && find . -printf '%p %y %T@ %m\\n' | sort) > scratch/mounted && \
        (cd root/dst && find . -printf '%p %y %T@ %m\\n' | sort) > scratch/backing && \
        diff scratch/want scratch/got && diff scratch/mounted scratch/backing && echo same
        """), "same\n")
    XCTAssertEqual(try sh("find root -name '.*' | wc -l"), "0\n", "temporary files left")
    // One upload per drained batch, and processes of up to 64 changes (the drain runs beside
    // rsync, so the passes vary). One by one, each file was an upload and two processes.
    let (madeUploads, madeProcesses) = (
      requests("POST /files ") - uploads, requests("Process/Start") - processes
    )
    print("rsync of 300 files drained in \(madeUploads) uploads and \(madeProcesses) processes")
    XCTAssertLessThanOrEqual(madeUploads, 12)
    // A directory made in one pass and changed during it was made again, one by one, in the
    // next: 67 to 114 processes where 15 do.
    XCTAssertLessThanOrEqual(madeProcesses, 40)
  }
}

/// The agent carried out a batch but its answer was lost (the connection cut, or the agent
/// killed, just after): the retry finds the file as that batch made it, ours, which is no
/// conflict (Scripts/soak found `NAME.sandbox-mount-conflict-…` copies after agent restarts).
final class LostBatchAnswerTests: MountTestCase {
  private var proxy: AnswerDroppingProxy!

  override var syncsBeforeEachCommand: Bool { false }

  override func mountTarget(agentURL: String) throws -> (url: String, arguments: [String]) {
    // The new content below as the batch's JSON carries it.
    proxy = try AnswerDroppingProxy(
      upstream: agentURL, marker: Data("new content\n".utf8).base64EncodedString())
    return (proxy.url, [])
  }

  override func tearDown() {
    super.tearDown()
    proxy?.stop()
  }

  func testABatchWhoseAnswerWasLostIsNoConflict() throws {
    try sh("echo old > root/f && cat mnt/f >/dev/null")
    try sh("echo 'new content' > mnt/f && timeout 60 sync mnt")
    XCTAssertEqual(proxy.dropped, 1)
    XCTAssertEqual(try sh("cat root/f"), "new content\n")
    XCTAssertEqual(try sh("ls root"), "f\n", "a conflict copy was made")
  }
}
