import Dispatch
import Foundation
import FuseBridge
import MemoryTuning

// Synchronous top-level code runs on the main thread before any other thread exists, so every
// thread inherits this mask and only our signal thread sees SIGINT/SIGTERM/SIGHUP (see
// TerminationSignals). A top-level `await` would move this code off the main thread, and
// dispatchMain() would park the main thread in sigsuspend with an empty mask, letting SIGTERM
// kill us without unmounting; so the main thread parses, then waits for the work to call exit().
TerminationSignals.block()
MemoryAllocator.keepLargeChunksForReuse()

// `sync` and `status` talk to a running mount; anything else is a mount.
switch CommandLine.arguments.dropFirst().first {
case "sync":
  SyncCommand.main(Array(CommandLine.arguments.dropFirst(2)))
  exit(0)
case "status":
  StatusCommand.main(Array(CommandLine.arguments.dropFirst(2)))
  exit(0)
default: break
}

let command: MountCommand
do {
  let arguments: [String]
  do {
    arguments = try MountHelperArguments.expand(Array(CommandLine.arguments.dropFirst()))
  } catch let failure as MountFailure {
    FileHandle.standardError.write(Data("sandbox-mount: \(failure)\n".utf8))
    exit(1)
  }
  let parsed = try MountCommand.parseAsRoot(arguments)
  guard let mount = parsed as? MountCommand else {
    var other = parsed
    try other.run()
    exit(0)
  }
  command = mount
} catch {
  MountCommand.exit(withError: error)
}

if command.startsBackgroundCopy {
  // Plain blocking waits on the main thread, before any Swift task exists.
  exit(Daemon.startBackgroundCopy())
}

Task.detached {
  do {
    try await command.start()
  } catch {
    MountCommand.exit(withError: error)
  }
  exit(0)
}
DispatchSemaphore(value: 0).wait()
