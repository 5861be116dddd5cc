import Foundation
import Synchronization
import TestSupport
import XCTest

/// The write path against a real agent: what each call costs in requests (counted from the
/// agent's debug log, one line per request), caches patched by our own changes, edits that
/// send only the changed bytes (counted by the agent), and uploads that a cut never breaks.
final class WritePathTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  // Long timeouts: the counts must not depend on how fast this machine runs the test. Write
  // through: these count the round trips of each call (WriteBackTests covers the journal).
  override var mountArguments: [String] {
    [
      "--attr-timeout", "60", "--entry-timeout", "60", "--negative-timeout", "60",
      "--write-back", "off",
    ]
  }

  /// Agent requests logged so far whose line contains `name` (all requests: "HTTP").
  func requests(_ name: String = " /") -> Int {
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    return agent.child.standardError.components(separatedBy: "\n")
      .filter { ($0.contains("POST /") || $0.contains("GET /")) && $0.contains(name) }.count
  }

  /// Request-body bytes the agent has received, from its `Counters` method.
  func bytesReceived() throws -> Int {
    let answer = try sh(
      "curl -sf -X POST -H 'Content-Type: application/json' -d '{}' \(agent.url)/sandboxagent.v1.Extension/Counters"
    )
    let json = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any]
    return Int(json?["bytesIn"] as? String ?? "") ?? -1
  }

  /// Runs `script` and returns how many agent requests it cost, and their log lines.
  func cost(of script: String) throws -> (count: Int, lines: String) {
    let before = requestLines()
    try sh(script)
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    let after = requestLines()
    return (after.count - before.count, after.dropFirst(before.count).joined(separator: "\n"))
  }

  private func requestLines() -> [String] {
    agent.child.standardError.components(separatedBy: "\n")
      .filter { $0.contains("POST /") || $0.contains("GET /") }
  }

  func testEveryCallIsOneRoundTrip() throws {
    try sh("mkdir root/d && for i in $(seq 1 300); do : > root/d/f$i; done && echo x > root/d/file")
    try sh("ls mnt/d > /dev/null")  // one listing; every lookup below is answered from it

    let calls: [(String, String)] = [
      ("lookup of a missing name", "! stat mnt/d/missing 2>/dev/null"),
      ("mkdir", "mkdir mnt/d/sub"),
      ("rmdir", "rmdir mnt/d/sub"),
      ("create", ": > mnt/d/new"),
      ("rename", "mv mnt/d/new mnt/d/renamed"),
      ("chmod", "chmod 600 mnt/d/renamed"),
      ("chown", "chown 1234:1234 mnt/d/renamed"),
      ("utimens", "touch -d '2001-02-03 04:05:06' mnt/d/renamed"),
      ("symlink", "ln -s renamed mnt/d/link"),
      ("link", "ln mnt/d/renamed mnt/d/hard"),
      ("unlink", "rm mnt/d/hard"),
    ]
    for (name, script) in calls {
      let (count, lines) = try cost(of: script)
      let expected = name == "lookup of a missing name" ? 0 : 1
      XCTAssertEqual(count, expected, "\(name) cost \(count) requests:\n\(lines)")
    }
    try assertMountMatchesRoot()
  }

  /// rsync creates each temp file with mode 0600, then fchmods it to 0600: that chmod changes
  /// nothing and must cost nothing; a chmod that changes the mode still costs one.
  func testAChmodThatChangesNothingCostsNoRequest() throws {
    let script =
      "import os; fd = os.open('mnt/t', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600);"
      + " os.fchmod(fd, 0o600); os.write(fd, b'x'); os.close(fd)"
    try sh("ls mnt > /dev/null")  // the lookup of the new name is answered from the listing
    let (made, madeLines) = try cost(of: "umask 022 && python3 -c \"\(script)\"")
    XCTAssertEqual(made, 2, "create, fchmod to the same mode, write, close:\n\(madeLines)")
    let (changed, changedLines) = try cost(of: "chmod 640 mnt/t")
    XCTAssertEqual(changed, 1, changedLines)
    XCTAssertEqual(
      try sh("stat -c %a root/t").trimmingCharacters(in: .whitespacesAndNewlines), "640")
    try assertMountMatchesRoot()
  }

  /// Fails on the code before write path I, where each of our creates dropped the folder's
  /// listing and the next lookups listed the whole folder again.
  func testOurOwnChangesPatchTheListingInsteadOfDroppingIt() throws {
    try sh("mkdir root/d && for i in $(seq 1 300); do : > root/d/old$i; done")
    try sh("ls mnt/d > /dev/null")
    let listings = requests("ListDir")
    let stats = requests("Extension/Stat")
    try sh(
      "for i in $(seq 1 40); do test ! -e mnt/d/new$i && echo $i > mnt/d/new$i && test -e mnt/d/old$i; done"
    )
    try sh("for i in $(seq 1 20); do rm mnt/d/old$i; test ! -e mnt/d/old$i; done")
    XCTAssertEqual(requests("ListDir") - listings, 0, "a change dropped the cached listing")
    XCTAssertEqual(requests("Extension/Stat") - stats, 0, "a lookup missed the patched listing")
    // The kernel's cached listing is refreshed too.
    XCTAssertEqual(
      try sh("ls mnt/d | wc -l").trimmingCharacters(in: .whitespacesAndNewlines), "320")
    try assertMountMatchesRoot()
  }

  func testASmallEditOfALargeFileSendsOnlyTheChangedBytes() throws {
    try sh("head -c 67108864 /dev/urandom > root/big.bin && cp root/big.bin scratch/expected.bin")
    try sh("cmp mnt/big.bin root/big.bin >/dev/null")  // reads it once, so the edit has a cache

    var before = try bytesReceived()
    try sh(
      "head -c 4096 /dev/urandom > scratch/patch.bin"
        + " && dd if=scratch/patch.bin of=mnt/big.bin bs=4096 seek=5000 conv=notrunc status=none"
        + " && dd if=scratch/patch.bin of=scratch/expected.bin bs=4096 seek=5000 conv=notrunc status=none"
    )
    XCTAssertLessThan(try bytesReceived() - before, 1 << 20, "a 4 KiB edit sent too much")
    try sh("cmp root/big.bin scratch/expected.bin")

    before = try bytesReceived()
    try sh("echo 'one more line' >> mnt/big.bin && echo 'one more line' >> scratch/expected.bin")
    XCTAssertLessThan(try bytesReceived() - before, 1 << 20, "an append sent too much")
    try sh("cmp root/big.bin scratch/expected.bin")
    try sh("cmp mnt/big.bin scratch/expected.bin")
  }

  /// A large file written over a reused staging file is deleted with its pages never written
  /// to the local disk: the kernel counts them as cancelled writes. (ext4 took the reused file,
  /// truncated to size 0, for a rewrite in place and wrote all of it back at the upload's
  /// close: 0 bytes cancelled.)
  func testAStagingFileIsNotWrittenToTheLocalDisk() throws {
    let stagingParent = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    // ext4's magic, which stat(1) names so.
    guard try sh("stat -f -c %T \(stagingParent)") == "ext2/ext3\n" else {
      throw XCTSkip("the staging folder \(stagingParent) is not on ext4")
    }
    try sh("echo small > mnt/small")
    Thread.sleep(forTimeInterval: 0.5)  // its release keeps its staging file for reuse
    let before = try cancelledWriteBytes()
    try sh("head -c 67108864 /dev/urandom > mnt/big")
    var cancelled = 0
    for _ in 0..<50 where cancelled < 32 << 20 {
      Thread.sleep(forTimeInterval: 0.1)  // the staging file is closed after the release
      cancelled = try cancelledWriteBytes() - before
    }
    XCTAssertGreaterThanOrEqual(cancelled, 32 << 20)
    XCTAssertEqual(try sh("cmp mnt/big root/big && echo same"), "same\n")
  }

  /// Bytes the daemon dirtied and then dropped unwritten (`/proc/PID/io`).
  private func cancelledWriteBytes() throws -> Int {
    try XCTUnwrap(
      processIOCounter("cancelled_write_bytes", of: mount.child.process.processIdentifier))
  }

  /// Reads of a file open for writing merge what was written with the remote's bytes; truncates
  /// and holes reach the remote in order.
  func testReadsTruncatesAndHolesOfAFileOpenForWriting() throws {
    try sh("head -c 3000000 /dev/urandom > root/f.bin && cp root/f.bin scratch/expected.bin")
    let script = """
      import os, sys
      for path in (sys.argv[1], sys.argv[2]):
          fd = os.open(path, os.O_RDWR)
          os.pwrite(fd, b"A" * 5000, 1000000)
          assert os.pread(fd, 10, 999995)[5:] == b"AAAAA"
          os.ftruncate(fd, 1500000)
          os.pwrite(fd, b"B" * 100, 2500000)
          os.ftruncate(fd, 2400000)
          os.pwrite(fd, b"C" * 10, 2600000)
          data = os.pread(fd, 3000000, 0)
          assert len(data) == 2600010, len(data)
          os.close(fd)
      """
    try script.write(toFile: scratch + "/edit.py", atomically: true, encoding: .utf8)
    try sh("python3 scratch/edit.py mnt/f.bin scratch/expected.bin")
    try sh("cmp root/f.bin scratch/expected.bin")
  }

  /// An upload cut by a killed agent leaves the old content whole; the staged data stays, and
  /// fsync against a restarted agent sends it.
  func testAKilledUploadLeavesTheOldContentAndARetrySendsIt() throws {
    try checkKilledUpload(temporaryPrefix: ".victim.bin.sandbox-agent-")
  }

  /// A full sandbox disk reaches the writer as ENOSPC, and the file keeps its old content.
  func testAFullSandboxDiskIsENOSPCAndKeepsTheOldContent() throws {
    try sh("mkdir root/small && mount -t tmpfs -o size=2m tmpfs root/small")
    defer { _ = try? shStatus("umount -l root/small") }
    try sh("head -c 500000 /dev/urandom > root/small/f.bin && cp root/small/f.bin scratch/old.bin")
    // The shell's `>` flushes the emptied file before head writes: the old content is then
    // the empty file, which a cut upload must leave as it is, not a prefix of the new.
    let result = try shStatus("head -c 4000000 /dev/urandom > mnt/small/f.bin")
    XCTAssertNotEqual(result.status, 0)
    XCTAssertTrue(result.error.contains("No space left on device"), result.error)
    XCTAssertEqual(try sh("stat -c %s root/small/f.bin"), "0\n")
    // One descriptor, no dup (shells and dd dup theirs): the old content stays whole.
    try sh("cp scratch/old.bin root/small/g.bin")
    let direct = try shStatus(
      "python3 -c 'import os; f = open(\"mnt/small/g.bin\", \"wb\"); f.write(os.urandom(4000000)); f.close()'"
    )
    XCTAssertNotEqual(direct.status, 0)
    XCTAssertTrue(direct.error.contains("No space left on device"), direct.error)
    try sh("cmp root/small/g.bin scratch/old.bin")
    XCTAssertEqual(try sh("ls -A root/small"), "f.bin\ng.bin\n", "a temporary file was left")
  }
}

extension MountTestCase {
  /// An inotify queue of the names created or written in `folder` (an `O_TMPFILE` file's
  /// writes come as `#INODE`); armed here, so nothing after the call is missed.
  static func watchNames(in folder: String) -> Int32? {
    let queue = inotify_init1(0)
    guard queue >= 0 else { return nil }
    guard inotify_add_watch(queue, folder, UInt32(IN_CREATE | IN_MODIFY)) >= 0 else {
      close(queue)
      return nil
    }
    return queue
  }

  /// Blocks until `queue` reports a name that `matches`, or `seconds` pass; true if one came.
  /// Closes the queue.
  static func waitForName(
    on queue: Int32, seconds: Int32, matching matches: (String) -> Bool
  ) -> Bool {
    defer { close(queue) }
    var buffer = [UInt8](repeating: 0, count: 65536)
    var poller = pollfd(fd: queue, events: Int16(POLLIN), revents: 0)
    while poll(&poller, 1, seconds * 1000) > 0 {
      let count = buffer.withUnsafeMutableBytes { read(queue, $0.baseAddress, $0.count) }
      var offset = 0
      // struct inotify_event: wd, mask, cookie, len (4 bytes each), then a NUL-padded name.
      while count > 0 && offset + 16 <= count {
        let length = buffer[(offset + 12)..<(offset + 16)].reversed().reduce(0) {
          $0 << 8 | Int($1)
        }
        let name = String(
          decoding: buffer[(offset + 16)..<(offset + 16 + length)].prefix { $0 != 0 }, as: UTF8.self
        )
        if matches(name) { return true }
        offset += 16 + length
      }
    }
    return false
  }

  static func inode(of path: String) -> ino_t {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_ino : 0
  }

  /// Writes new content over `victim.bin`, stops the agent once its upload is under way (a file
  /// named `temporaryPrefix…` appears, or the agent holds an anonymous file in the root), checks
  /// the old content is whole, kills the agent, and sends the new content with fsync to a
  /// restarted agent.
  func checkKilledUpload(temporaryPrefix: String) throws {
    try sh("head -c 33554432 /dev/urandom > root/victim.bin && cp root/victim.bin scratch/old.bin")
    try sh("head -c 134217728 /dev/urandom > scratch/new.bin")
    let descriptor = open(mountpoint + "/victim.bin", O_WRONLY | O_TRUNC)
    XCTAssertGreaterThanOrEqual(descriptor, 0)
    defer { close(descriptor) }
    let new = try Data(contentsOf: URL(fileURLWithPath: scratch + "/new.bin"))
    let written = new.withUnsafeBytes { write(descriptor, $0.baseAddress!, $0.count) }
    XCTAssertEqual(written, new.count)

    // Stop the agent as soon as the upload's temporary file appears, then kill it.
    let pid = agent.child.process.processIdentifier
    let rootPath = root
    let victim = root + "/victim.bin"
    let oldInode = Self.inode(of: victim)
    // inotify wakes the watcher at the upload's first write (polling missed the window).
    let queue = try XCTUnwrap(Self.watchNames(in: rootPath), "inotify")
    let watcher = Thread {
      let caught = Self.waitForName(on: queue, seconds: 30) { name in
        name.hasPrefix(temporaryPrefix)
          || (name.hasPrefix("#") && Self.inode(of: victim) == oldInode)
      }
      if caught { kill(pid, SIGSTOP) }
    }
    watcher.start()
    var failure: Int32 = 0
    let synced = Thread.detachNewThreadAndWait {
      fsync(descriptor) == 0 ? 0 : errno
    } onStarted: {
      // While the agent is stopped mid-upload, the target still holds the old content.
      _ = self.agent.child.waitFor(timeout: 30) { self.processIsStopped(pid) }
      XCTAssertTrue(self.processIsStopped(pid), "the upload was not caught mid-way")
      try? self.sh("cmp root/victim.bin scratch/old.bin")
      kill(pid, SIGKILL)
    }
    failure = synced
    XCTAssertEqual(failure, EIO, "fsync of a cut upload")
    try sh("cmp root/victim.bin scratch/old.bin")

    try sandbox.restartAgent(arguments: agentArguments)
    XCTAssertEqual(fsync(descriptor), 0, "the retry after the restart: errno \(errno)")
    try sh("cmp root/victim.bin scratch/new.bin")
  }

  fileprivate func processIsStopped(_ pid: pid_t) -> Bool {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    guard let close = status.lastIndex(of: ")") else { return false }
    return status[status.index(close, offsetBy: 2)...].hasPrefix("T")
  }
}

extension Thread {
  /// Runs `work` on a new thread while `onStarted` runs on this one, then waits for `work`.
  static func detachNewThreadAndWait<T: Sendable>(
    _ work: @escaping @Sendable () -> T, onStarted: () -> Void
  ) -> T {
    let result = Mutex<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      result.withLock { $0 = work() }
      done.signal()
    }
    onStarted()
    done.wait()
    return result.withLock { $0! }
  }
}

/// The same write path against stock envd (`--envd-compat`): process fallbacks, no extension.
final class StockWritePathTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug", "--envd-compat"] }
  // Write through: the requests of each edit are counted.
  override var mountArguments: [String] { ["--write-back", "off"] }

  private var requestLog: [String] {
    agent.child.standardError.components(separatedBy: "\n")
      .filter { $0.contains("POST /") || $0.contains("GET /") }
  }

  /// A 4 KiB edit and an append go through one process each, not a whole upload.
  func testASmallEditOfALargeFileIsOneProcess() throws {
    try sh("head -c 67108864 /dev/urandom > root/big.bin && cp root/big.bin scratch/expected.bin")
    try sh("stat mnt/big.bin > /dev/null")
    Thread.sleep(forTimeInterval: 0.2)
    let before = requestLog.count
    try sh(
      "head -c 4096 /dev/urandom > scratch/patch.bin"
        + " && dd if=scratch/patch.bin of=mnt/big.bin bs=4096 seek=5000 conv=notrunc status=none"
        + " && dd if=scratch/patch.bin of=scratch/expected.bin bs=4096 seek=5000 conv=notrunc status=none"
        + " && echo 'one more line' >> mnt/big.bin && echo 'one more line' >> scratch/expected.bin"
    )
    Thread.sleep(forTimeInterval: 0.2)
    let edits = requestLog.dropFirst(before)
    // (`POST /files?…`, not the `POST /filesystem.Filesystem/…` calls.)
    XCTAssertFalse(
      edits.contains { $0.contains("POST /files?") || $0.contains("POST /files ") },
      edits.joined(separator: "\n"))
    XCTAssertEqual(edits.filter { $0.contains("Process/Start") }.count, 2)
    try sh("cmp root/big.bin scratch/expected.bin")
  }

  func testAKilledUploadLeavesTheOldContentAndARetrySendsIt() throws {
    try checkKilledUpload(temporaryPrefix: ".victim.bin.sandbox-mount-")
  }
}
