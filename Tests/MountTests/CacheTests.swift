import Foundation
import TestSupport
import XCTest

/// The read path's caches against a real agent: block cache, disk cache, page cache kept across
/// opens, single flight, TTLs. Agent requests are counted from its debug log (one line per
/// request), so "served from cache" is a count, not a timing.
final class CacheTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  var cacheDirectory: String { workDirectory.path + "/cache" }
  override var mountArguments: [String] {
    [
      "--cache-dir", cacheDirectory, "--attr-timeout", "1", "--entry-timeout", "1",
      "--negative-timeout", "1",
    ]
  }

  /// `GET /files` requests the agent has logged so far.
  func fileRequests() -> Int {
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    return agent.child.standardError.components(separatedBy: "GET /files ").count - 1
  }

  func testAFileIsFetchedOnceABlockAndReReadsComeFromTheCaches() throws {
    try sh("head -c 8388608 /dev/urandom > root/eight.bin")
    let before = fileRequests()
    try sh("cmp mnt/eight.bin root/eight.bin")
    let fetched = fileRequests() - before
    // Eight 1 MiB blocks; prefetch asks for runs of consecutive blocks in one GET each.
    XCTAssertTrue((1...8).contains(fetched), "\(fetched) GETs")

    // A new open of an unchanged file keeps the page cache: no request at all.
    try sh("cmp mnt/eight.bin root/eight.bin")
    XCTAssertEqual(fileRequests() - before, fetched)
    // O_DIRECT skips the page cache; the daemon answers from its memory cache.
    try sh("dd if=mnt/eight.bin of=scratch/direct.bin bs=1M iflag=direct status=none")
    try sh("cmp scratch/direct.bin root/eight.bin")
    XCTAssertEqual(fileRequests() - before, fetched)
  }

  func testTheDiskCacheServesARemount() throws {
    try sh("head -c 3000000 /dev/urandom > root/kept.bin")
    try sh("cmp mnt/kept.bin root/kept.bin")
    mount.unmount()
    mount = nil  // its deinit unmounts whatever is on the mountpoint: not the next mount
    mount = try RunningMount(url: agent.url, mountpoint: mountpoint, arguments: mountArguments)
    let before = fileRequests()
    try sh("dd if=mnt/kept.bin of=scratch/kept.bin bs=1M iflag=direct status=none")
    try sh("cmp scratch/kept.bin root/kept.bin")
    XCTAssertEqual(fileRequests() - before, 0, "all three blocks come from --cache-dir")
  }

  func testARemoteChangeIsSeenAfterTheTimeouts() throws {
    try sh("printf one > root/note.txt")
    XCTAssertEqual(try sh("cat mnt/note.txt"), "one")
    // Same size, another mtime: only the version (size + mtime in ns) tells them apart.
    try sh("printf two > root/note.txt && touch -d '2001-02-03 04:05:06.789' root/note.txt")
    Thread.sleep(forTimeInterval: 1.5)
    XCTAssertEqual(try sh("cat mnt/note.txt"), "two")
    try sh("printf 'three, longer' > root/note.txt")
    Thread.sleep(forTimeInterval: 1.5)
    XCTAssertEqual(try sh("cat mnt/note.txt"), "three, longer")

    // A name looked up while missing appears once the negative entry expires.
    XCTAssertNotEqual(try shStatus("cat mnt/later.txt").status, 0)
    try sh("printf here > root/later.txt")
    Thread.sleep(forTimeInterval: 1.5)
    XCTAssertEqual(try sh("cat mnt/later.txt"), "here")
  }

  /// Agent requests whose path contains `name` (e.g. "ListDir").
  func requests(_ name: String) -> Int {
    Thread.sleep(forTimeInterval: 0.2)
    return agent.child.standardError.components(separatedBy: name).count - 1
  }

  /// Pages of `file` in the kernel's page cache right after an open through the mount: fincore
  /// opens the file, maps it and counts with mincore, touching no page. An open answered without
  /// FOPEN_KEEP_CACHE drops them all before the count.
  func residentPages(_ file: String) throws -> Int {
    Int(
      try sh("fincore --noheadings --output PAGES \(file)").trimmingCharacters(
        in: .whitespacesAndNewlines))
      ?? -1
  }

  /// The kernel keeps the pages of a file written whole here: reading it back, or opening it
  /// for a small edit, drops nothing, even once its attributes expired. Counted as pages kept
  /// at an open, not as GETs: on these VMs (a kdamond thread runs there) a few idle pages of any
  /// file, local ones too, are evicted within seconds, and each such hole costs a block's GET.
  func testAFileWrittenHereIsReadBackFromTheKernelsPages() throws {
    let pages = 1024
    try sh("head -c 4194304 /dev/urandom > scratch/data && cp scratch/data mnt/data")
    Thread.sleep(forTimeInterval: 1.5)
    XCTAssertGreaterThan(try residentPages("mnt/data"), pages * 3 / 4)
    try sh("cmp scratch/data mnt/data")
    // Edits in place, the second after the attributes expired: the pages stay.
    for file in ["mnt/data", "scratch/data"] {
      try sh("printf XYZ | dd of=\(file) bs=1 seek=1000 conv=notrunc status=none")
    }
    Thread.sleep(forTimeInterval: 1.5)
    for file in ["mnt/data", "scratch/data"] {
      try sh("printf ABC | dd of=\(file) bs=1 seek=3000000 conv=notrunc status=none")
    }
    // dd's release reaches the daemon after its close returned (the kernel sends it on its
    // own); a reader's open before that finds a writer still open, and drops the pages.
    Thread.sleep(forTimeInterval: 0.5)
    XCTAssertGreaterThan(try residentPages("mnt/data"), pages * 3 / 4)
    try sh("cmp scratch/data mnt/data && cmp scratch/data root/data")
  }

  func testListingsAreFetchedOnceAndRepeatedListingsComeFromTheCaches() throws {
    try sh(
      "for d in a b c d e; do mkdir -p root/tree/$d; for f in 1 2 3; do echo $d$f > root/tree/$d/$f; done; done"
    )
    let before = requests("ListDir")
    XCTAssertEqual(try sh("find mnt/tree | sort | wc -l"), "21\n")
    // The tree and its five folders, each listed once, though listed ahead in parallel.
    XCTAssertEqual(requests("ListDir") - before, 6)
    try sh("ls -lR mnt/tree > /dev/null; ls -lR mnt/tree > /dev/null")
    XCTAssertEqual(requests("ListDir") - before, 6)

    try sh("echo new > root/tree/a/4")
    Thread.sleep(forTimeInterval: 1.5)
    XCTAssertEqual(try sh("ls mnt/tree/a"), "1\n2\n3\n4\n")
  }

  func testLookupsOfManyNamesInOneFolderShareOneListing() throws {
    try sh("mkdir root/src && for i in $(seq 10 49); do echo $i > root/src/f$i.c; done")
    let stats = requests("Extension/Stat")
    let listings = requests("ListDir")
    // One name after another, as git status and make stat them, and a name that is not there.
    XCTAssertEqual(
      try sh("cd mnt/src && for i in $(seq 10 49); do stat -c %s f$i.c; done | sort -u"), "3\n")
    XCTAssertNotEqual(try shStatus("stat mnt/src/g.c").status, 0)
    // The folder and its first name by stat; the second name lists the folder, which answers
    // the rest, the missing name included. Name by name it was 42 stats.
    XCTAssertLessThanOrEqual(requests("Extension/Stat") - stats, 3)
    XCTAssertEqual(requests("ListDir") - listings, 1)
    // A name the listing did not have is looked up again once the listing expires.
    try sh("echo new > root/src/g.c")
    Thread.sleep(forTimeInterval: 1.5)
    XCTAssertEqual(try sh("cat mnt/src/g.c"), "new\n")
  }

  func testFilesReadInListingOrderAreFetchedOnceEach() throws {
    try sh("mkdir root/many && for i in $(seq 10 49); do echo file $i > root/many/f$i; done")
    XCTAssertEqual(try sh("ls mnt/many | wc -l"), "40\n")
    let before = fileRequests()
    // grep reads them in listing order: the next files' starts are fetched ahead, in parallel.
    XCTAssertEqual(try sh("grep -r -l 'file 4[0-9]' mnt/many | wc -l"), "10\n")
    XCTAssertEqual(fileRequests() - before, 40)
    try sh("diff -r root/many mnt/many")
  }

  func testOurOwnChangesAreSeenAtOnce() throws {
    try sh("printf old > root/mine.txt")
    XCTAssertEqual(try sh("cat mnt/mine.txt"), "old")
    XCTAssertEqual(try sh("ls mnt"), "mine.txt\n")
    try sh("printf new > mnt/mine.txt")
    XCTAssertEqual(try sh("cat mnt/mine.txt"), "new")
    try sh("printf x > mnt/other.txt")
    XCTAssertEqual(try sh("ls mnt"), "mine.txt\nother.txt\n")
    try sh("rm mnt/other.txt")
    XCTAssertEqual(try sh("ls mnt"), "mine.txt\n")
  }
}

/// Without prefetch every block is fetched when a read needs it: one GET per block, however
/// many readers want it at once.
final class SingleFlightTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  override var mountArguments: [String] { ["--prefetch-max", "0"] }

  func testConcurrentReadersOfOneFileShareEachFetch() throws {
    try sh("head -c 16777216 /dev/urandom > root/shared.bin")
    Thread.sleep(forTimeInterval: 0.2)
    let before = agent.child.standardError.components(separatedBy: "GET /files ").count
    try sh(
      "pids=; for i in 1 2 3 4; do cmp mnt/shared.bin root/shared.bin & pids=\"$pids $!\"; done; fail=0; for p in $pids; do wait $p || fail=1; done; exit $fail"
    )
    Thread.sleep(forTimeInterval: 0.2)
    let after = agent.child.standardError.components(separatedBy: "GET /files ").count
    XCTAssertEqual(after - before, 16)
  }
}

/// A tiny memory budget and small blocks: eviction on every read, data still exact.
final class SmallCacheTests: MountTestCase {
  override var mountArguments: [String] {
    ["--block-size", "64K", "--memory-cache", "256K", "--prefetch-max", "1M"]
  }

  func testSmallRandomReadsOfALargeFileReturnItsBytes() throws {
    try sh("head -c 25165824 /dev/urandom > root/large.bin")
    let mismatches = try sh(
      """
      python3 - <<'PY'
      import mmap, os, random
      random.seed(7)
      remote = open("root/large.bin", "rb").read()
      fd = os.open("mnt/large.bin", os.O_RDONLY | os.O_DIRECT)
      buffer = mmap.mmap(-1, 8192)
      bad = 0
      for _ in range(300):
          offset = random.randrange(0, len(remote) - 8192, 4096)
          size = random.choice((4096, 8192))
          got = os.preadv(fd, [memoryview(buffer)[:size]], offset)
          bad += got != size or buffer[:size] != remote[offset:offset + size]
      print(bad)
      PY
      """)
    XCTAssertEqual(mismatches.trimmingCharacters(in: .whitespacesAndNewlines), "0")
  }

  func testReadsStayCorrectWhileBlocksAreEvicted() throws {
    try sh("head -c 20000000 /dev/urandom > root/big.bin")
    try sh(
      "pids=; for i in 1 2 3; do cmp mnt/big.bin root/big.bin & pids=\"$pids $!\"; done; fail=0; for p in $pids; do wait $p || fail=1; done; exit $fail"
    )
    try sh("dd if=mnt/big.bin of=scratch/tail.bin bs=1000 skip=19990 iflag=direct status=none")
    try sh("tail -c 10000 root/big.bin | cmp - scratch/tail.bin")
  }

  func testCacheOptionsAreChecked() throws {
    for arguments in [
      ["--block-size", "1K"], ["--memory-cache", "64K"], ["--block-size", "lots"],
    ] {
      let result = try runCommand(
        [BuiltProducts.executable("sandbox-mount"), agent.url, scratch, "-f"] + arguments)
      XCTAssertNotEqual(result.status, 0, "\(arguments)")
      XCTAssertTrue(result.error.contains("block") || result.error.contains("memory"), result.error)
    }
  }
}

/// The truncation check end to end: the agent's fault switch cuts bodies short.
class TruncationTests: MountTestCase {
  var faultSwitch: String { workDirectory.path + "/truncate-bytes" }
  override var agentEnvironment: [String: String]? {
    ["SANDBOX_AGENT_FAULT_TRUNCATE_FILE": faultSwitch]
  }

  func testShortBodiesAreEIONeverPartialDataAndNothingIsCached() throws {
    try sh("head -c 3000000 /dev/urandom > root/cut.bin")
    try "100".write(toFile: faultSwitch, atomically: true, encoding: .utf8)

    let whole = try shStatus("cat mnt/cut.bin > scratch/out.bin")
    XCTAssertNotEqual(whole.status, 0)
    XCTAssertTrue(whole.error.contains("Input/output error"), whole.error)
    // Whatever cat got before the error is the file's own bytes, never wrong or padded ones.
    try sh("cmp -n $(stat -c %s scratch/out.bin) scratch/out.bin root/cut.bin")
    let middle = try shStatus(
      "dd if=mnt/cut.bin of=scratch/middle.bin bs=4096 skip=300 count=1 status=none")
    XCTAssertNotEqual(middle.status, 0)
    XCTAssertTrue(middle.error.contains("Input/output error"), middle.error)

    // Logged with the path, the bytes expected and the bytes delivered.
    Thread.sleep(forTimeInterval: 0.2)
    let log = mount.child.standardError
    XCTAssertTrue(log.contains("/cut.bin"), log)
    XCTAssertTrue(log.contains("expected"), log)

    // With the fault gone, the same mount reads the whole file correctly: nothing short was kept.
    try FileManager.default.removeItem(atPath: faultSwitch)
    try sh("cmp mnt/cut.bin root/cut.bin")
  }

  func testASmallRandomReadOfALargeFileIsCheckedToo() throws {
    // 24 blocks: after its first read, a handle's far 4 KiB reads fetch just their pages.
    try sh("head -c 25165824 /dev/urandom > root/large.bin")
    try "100".write(toFile: faultSwitch, atomically: true, encoding: .utf8)
    let result = try sh(
      """
      python3 - <<'PY'
      import mmap, os
      fd = os.open("mnt/large.bin", os.O_RDONLY | os.O_DIRECT)
      buffer = mmap.mmap(-1, 4096)
      for offset in (0, 20 << 20):
          try:
              os.preadv(fd, [buffer], offset)
              print("read")
          except OSError as error:
              print(os.strerror(error.errno))
      PY
      """)
    XCTAssertEqual(
      result.split(separator: "\n"), ["Input/output error", "Input/output error"], result)
    try FileManager.default.removeItem(atPath: faultSwitch)
    try sh("cmp mnt/large.bin root/large.bin")
  }

  func testAFileThatGrewIsNotAnError() throws {
    try sh("printf 'short' > root/grow.txt")
    XCTAssertEqual(try sh("cat mnt/grow.txt"), "short")
    let read = try sh("exec 3<mnt/grow.txt; printf ' and longer' >> root/grow.txt; cat <&3")
    XCTAssertTrue(read.hasPrefix("short"), read)
  }
}

/// `--whole-file-reads`: the reader for sandboxes without ranged reads, through FUSE. A file is
/// fetched whole once per version and every read, at any offset, is served from the copy.
final class WholeFileReadTests: MountTestCase {
  override var agentArguments: [String] { ["--log-level", "debug"] }
  override var mountArguments: [String] {
    ["--cache-dir", workDirectory.path + "/cache", "--attr-timeout", "1", "--whole-file-reads"]
  }

  /// `GET /files` requests the agent has logged so far.
  func fileRequests() -> Int {
    Thread.sleep(forTimeInterval: 0.2)
    return agent.child.standardError.components(separatedBy: "GET /files ").count - 1
  }

  func testAFileIsFetchedWholeOncePerVersion() throws {
    try sh("head -c 8388608 /dev/urandom > root/eight.bin")
    let before = fileRequests()
    for block in [5, 0, 7, 2] {
      try sh(
        "dd if=mnt/eight.bin of=scratch/b bs=1M skip=\(block) count=1 iflag=direct status=none"
          + " && dd if=root/eight.bin bs=1M skip=\(block) count=1 status=none | cmp - scratch/b")
    }
    XCTAssertEqual(fileRequests() - before, 1, "one whole GET, no ranges")

    // Another version (size and mtime) is fetched again, once.
    try sh("head -c 5000000 /dev/urandom > root/eight.bin")
    Thread.sleep(forTimeInterval: 1.5)
    try sh("cmp mnt/eight.bin root/eight.bin")
    try sh("dd if=mnt/eight.bin of=scratch/b bs=4k skip=100 count=1 iflag=direct status=none")
    XCTAssertEqual(fileRequests() - before, 2)
  }
}
