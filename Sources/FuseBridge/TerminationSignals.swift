import Foundation

/// SIGINT, SIGTERM and SIGHUP, handled by one thread waiting in `sigwait`.
///
/// libfuse's own handlers (`fuse_set_signal_handlers`) only set a flag that the loop sees after
/// its next request, and the signal may land on any of our threads (curl's, Swift's), leaving the
/// loop asleep. Blocking the signals in every thread and waiting for them on one thread that
/// unmounts is deterministic: the unmount ends the loop at once.
public enum TerminationSignals {
  private static let handled = [SIGINT, SIGTERM, SIGHUP]

  /// Blocks the signals in this thread and every thread started after; call first in `main`.
  /// Also ignores SIGPIPE, which a closed connection must not turn into a crash.
  public static func block() {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in handled { sigaddset(&set, signal) }
    pthread_sigmask(SIG_BLOCK, &set, nil)
    signal(SIGPIPE, SIG_IGN)
  }

  /// Calls `handler` on a dedicated thread for each signal received.
  public static func handle(_ handler: @escaping @Sendable (Int32) -> Void) {
    let thread = Thread {
      var set = sigset_t()
      sigemptyset(&set)
      for signal in handled { sigaddset(&set, signal) }
      // sigwait needs them blocked here too, whichever thread started this one.
      pthread_sigmask(SIG_BLOCK, &set, nil)
      while true {
        var received: Int32 = 0
        guard sigwait(&set, &received) == 0 else { continue }
        handler(received)
      }
    }
    thread.name = "signals"
    thread.start()
  }
}
