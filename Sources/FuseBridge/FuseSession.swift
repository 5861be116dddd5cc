import CFuse
import FilesystemCore
import Foundation
import Logging
import Synchronization

public struct FuseSessionError: Error, CustomStringConvertible {
  public var description: String
}

/// One FUSE mount: a libfuse session, its mount, and the loop serving it on threads of its own.
public final class FuseSession: @unchecked Sendable {
  // @unchecked: `session` is only used by the calling thread and the loop thread, in turns
  // (created, then looped, then torn down after the loop ended); libfuse handles the rest.
  private let session: OpaquePointer
  private let dispatcher: RequestDispatcher
  private let retainedDispatcher: Unmanaged<RequestDispatcher>
  private let logger: Logger
  private var mountpoint: String?
  private let loopEnded = Mutex(false)
  private let notifications: KernelNotifications

  /// Whether the loop stopped serving requests (it may still be finishing answers).
  public var hasStoppedServing: Bool { loopEnded.withLock { $0 } }

  /// `mountOptions` are passed to libfuse as `-o` options (fsname, allow_other, ro, …); `debug`
  /// turns on libfuse's request log on stderr; `readaheadKiB` is the kernel's readahead window
  /// (0 keeps the kernel's 128 KiB default). Light requests run on `lightRequestExecutor` when
  /// given (the backend's transfer thread), others on the shared pool.
  public init(
    filesystem: Filesystem, mountOptions: [String], debug: Bool, readaheadKiB: Int = 1024,
    lightRequestExecutor: (any TaskExecutor)? = nil, logger: Logger
  ) throws {
    LibfuseLog.install(logger)
    let dispatcher = RequestDispatcher(
      filesystem: filesystem, readaheadBytes: UInt32(readaheadKiB) * 1024,
      lightRequestExecutor: lightRequestExecutor, logger: logger)
    self.dispatcher = dispatcher
    self.logger = logger
    var arguments = fuse_args(argc: 0, argv: nil, allocated: 0)
    defer { fuse_opt_free_args(&arguments) }
    fuse_opt_add_arg(&arguments, "sandbox-mount")
    if !mountOptions.isEmpty {
      fuse_opt_add_arg(&arguments, "-o")
      fuse_opt_add_arg(&arguments, mountOptions.joined(separator: ","))
    }
    if debug { fuse_opt_add_arg(&arguments, "-d") }
    var operations = LowLevelOperations.make()
    let retained = Unmanaged.passRetained(dispatcher)
    guard
      let session = fuse_session_new(
        &arguments, &operations, MemoryLayout<fuse_lowlevel_ops>.size, retained.toOpaque())
    else {
      retained.release()
      throw FuseSessionError(
        description: LibfuseLog.takeLastError()
          ?? "libfuse refused the mount options: \(mountOptions.joined(separator: ","))")
    }
    self.session = session
    self.retainedDispatcher = retained
    notifications = KernelNotifications(session: session, logger: logger)
    filesystem.setKernelNotifier(notifications)
  }

  /// Invalidations sent to the kernel so far.
  public var kernelNotifications: Int { notifications.count }

  deinit {
    notifications.stop()
    if mountpoint != nil { fuse_session_unmount(session) }
    fuse_session_destroy(session)
    retainedDispatcher.release()
  }

  /// Mounts on `mountpoint` (an absolute path).
  public func mount(at mountpoint: String) throws {
    guard fuse_session_mount(session, mountpoint) == 0 else {
      throw FuseSessionError(
        description:
          "cannot mount on \(mountpoint): \(LibfuseLog.takeLastError() ?? "unknown error")")
    }
    self.mountpoint = mountpoint
    LibfuseLog.mounted()
    // Before FUSE_INIT is answered: the kernel then takes the smaller of this window and the
    // max_readahead our init reply asks for (see ConnectionSettings).
    if dispatcher.readaheadBytes > 0 {
      KernelReadahead.set(
        kibibytes: Int(dispatcher.readaheadBytes / 1024), mountpoint: mountpoint, logger: logger)
    }
  }

  /// libfuse's worker threads only read requests and answer the ones the caches hold; anything
  /// slower goes to a task. More threads than cores then only contend for the caches' locks: a
  /// cold `git status` (20 threads of lstat) took 0.85 s with 8 on 2 cores, 0.28 s with 4.
  public static let defaultMaxThreads = UInt32(
    min(8, max(2, 2 * ProcessInfo.processInfo.activeProcessorCount)))

  /// Serves requests until the filesystem is unmounted (`fusermount3 -u`, or `requestUnmount`),
  /// then waits for answers still being worked on (e.g. an upload at release), unmounts if still
  /// mounted and returns libfuse's loop status (0 for a regular unmount).
  public func run(maxThreads: UInt32 = FuseSession.defaultMaxThreads) async -> Int32 {
    let session = UncheckedSession(raw: session)
    let status = await withCheckedContinuation { continuation in
      let thread = Thread {
        let configuration = fuse_loop_cfg_create()
        fuse_loop_cfg_set_max_threads(configuration, maxThreads)
        let status = sandbox_fuse_session_loop_mt(session.raw, configuration)
        fuse_loop_cfg_destroy(configuration)
        continuation.resume(returning: status)
      }
      thread.name = "fuse-loop"
      thread.start()
    }
    loopEnded.withLock { $0 = true }
    notifications.stop()
    logger.debug("FUSE loop ended with status \(status)")
    await dispatcher.waitForRequests(timeout: .seconds(30))
    if mountpoint != nil {
      fuse_session_unmount(session.raw)
      mountpoint = nil
    }
    return status
  }

  /// Asks the loop to end by unmounting lazily (as `fusermount3 -u -z` does); safe from any
  /// thread. The kernel then closes the connection and `run` returns.
  public func requestUnmount() {
    guard let mountpoint else { return }
    fuse_session_exit(session)
    if geteuid() == 0 {
      if umount2(mountpoint, Int32(MNT_DETACH)) != 0 {
        logger.warning("unmount of \(mountpoint) failed: \(String(cString: strerror(errno)))")
      }
    } else {
      let unmount = Process()
      unmount.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      unmount.arguments = ["fusermount3", "-u", "-z", mountpoint]
      do {
        try unmount.run()
        unmount.waitUntilExit()
      } catch {
        logger.warning("fusermount3 -u failed: \(error)")
      }
    }
  }
}

private struct UncheckedSession: @unchecked Sendable {
  let raw: OpaquePointer
}
