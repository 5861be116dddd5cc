import Dispatch
import Foundation
import FuseBridge

// Synchronous top-level code runs on the main thread before any other thread exists, so every
// thread inherits this mask and only our signal thread sees SIGINT/SIGTERM/SIGHUP (see
// TerminationSignals). A top-level `await` would move this code off the main thread, and
// dispatchMain() would park the main thread in sigsuspend with an empty mask, letting SIGTERM
// kill us without unmounting; so the main thread just waits for the work to call exit().
TerminationSignals.block()

Task.detached {
  // Parsed and run by hand: `MountCommand.main()` would resolve to the synchronous overload.
  do {
    let command = try MountCommand.parseAsRoot()
    if let mount = command as? MountCommand {
      try await mount.start()
    } else {
      var command = command
      try command.run()
    }
  } catch {
    MountCommand.exit(withError: error)
  }
  exit(0)
}
DispatchSemaphore(value: 0).wait()
