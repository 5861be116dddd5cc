import Foundation
import TestSupport
import XCTest

extension MountTestCase {
  /// `sandbox-mount URL MNT -f` with nothing but `environment` to find the sandbox and its key
  /// (as the vendor's SDK reads them): the mount shows the agent's folder.
  func checkTheEnvironmentAloneMounts(_ url: String, environment: [String: String]) throws {
    let other = workDirectory.path + "/scratch/env-mnt"
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
    try sh("printf 'env\\n' > root/env.txt")
    let child = try ChildProcess(
      executable: BuiltProducts.executable("sandbox-mount"), arguments: [url, other, "-f"],
      environment: environment)
    defer {
      _ = try? runCommand(["fusermount3", "-u", other], timeout: 10)
      child.stop()
    }
    let deadline = Date().addingTimeInterval(20)
    while !RunningMount.isMounted(other) && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    XCTAssertTrue(RunningMount.isMounted(other), child.standardError)
    XCTAssertEqual(try String(contentsOfFile: other + "/env.txt", encoding: .utf8), "env\n")
  }

  /// cp, cat, ls -l, mkdir, chmod, mv, rm, a vim-style save, binary content both ways (a
  /// whole file and a range of it) and rsync of a small tree, each compared with the agent's
  /// folder. (Each `sh` waits for write-back first: the folder is compared in the next one.)
  func checkFileToolsMatchTheBackingFolder() throws {
    try sh("printf 'hello\\n' > scratch/a.txt && cp scratch/a.txt mnt/a.txt")
    XCTAssertEqual(try sh("cat mnt/a.txt"), "hello\n")
    // `sh` waits for write-back first: the agent's folder is read after the drain.
    XCTAssertEqual(try sh("cat root/a.txt"), "hello\n")
    try sh("mkdir mnt/d && cp mnt/a.txt mnt/d/b.txt && chmod 640 mnt/d/b.txt")
    XCTAssertTrue(try sh("ls -l mnt/d").contains("-rw-r----- "))
    try sh("mv mnt/d/b.txt mnt/d/c.txt && rm mnt/a.txt")
    try sh("test ! -e root/a.txt && test -f root/d/c.txt")
    // A vim-style save: the new content under a temporary name, renamed over the file.
    try sh("printf 'saved\\n' > mnt/d/.c.txt.swp && mv mnt/d/.c.txt.swp mnt/d/c.txt")
    XCTAssertEqual(try sh("cat root/d/c.txt"), "saved\n")
    // Binary content both ways: a whole-file upload, then whole and ranged reads.
    try sh("head -c 3000000 /dev/urandom > scratch/big && cp scratch/big mnt/big")
    try sh("cmp scratch/big root/big && cmp scratch/big mnt/big")
    try sh(
      "dd if=mnt/big of=scratch/part bs=4096 skip=300 count=2 status=none && dd if=scratch/big bs=4096 skip=300 count=2 status=none | cmp - scratch/part"
    )
    try sh(
      "mkdir -p scratch/tree/sub/deeper && printf x > scratch/tree/one && head -c 100000 /dev/urandom > scratch/tree/sub/two && ln -s one scratch/tree/link && chmod 750 scratch/tree/sub && rsync -a scratch/tree/ mnt/tree/ && diff -r scratch/tree mnt/tree"
    )
    try sh("diff -r scratch/tree root/tree")
    XCTAssertEqual(try sh("readlink mnt/tree/link"), "one\n")
    try sh("rm -r mnt/d")
    try sh("test ! -e root/d")
    try assertMountMatchesRoot()
  }

  /// Requests to `route` (e.g. `fs/write`) the agent has logged so far (it runs at debug).
  func agentRequests(to route: String) -> Int {
    Thread.sleep(forTimeInterval: 0.2)  // let the last log lines arrive
    return agent.child.standardError.components(separatedBy: "/\(route)").count - 1
  }

  /// A pwrite and an append to a big file send their bytes through one command each: none of
  /// `wholeFileRoutes` (the backend's whole-file download and upload) is asked.
  func checkSmallChangesToABigFileMoveOnlyTheirBytes(wholeFileRoutes: [String]) throws {
    try sh("head -c 6000000 /dev/urandom > root/big.bin && head -c 4096 /dev/urandom > scratch/b")
    let before = wholeFileRoutes.map(agentRequests(to:))
    try sh("dd if=scratch/b of=mnt/big.bin bs=4096 seek=700 conv=notrunc status=none")
    try sh("echo line >> mnt/big.bin")
    try sh("dd if=root/big.bin bs=4096 skip=700 count=1 status=none | cmp - scratch/b")
    XCTAssertEqual(try sh("tail -c 5 root/big.bin"), "line\n")
    XCTAssertEqual(try sh("stat -c %s root/big.bin"), "6000005\n")
    XCTAssertEqual(wholeFileRoutes.map(agentRequests(to:)), before, "\(wholeFileRoutes)")
  }
}
