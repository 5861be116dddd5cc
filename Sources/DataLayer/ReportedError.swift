import Backend
import Logging

/// An error a request fails with: the errno the kernel gets, and how loudly it is logged. The
/// error says it, so no one guesses from the errno.
public protocol ReportedError: Error {
  var errno: Int32 { get }
  var logLevel: Logger.Level { get }
}

extension RemoteError: ReportedError {
  /// An answer is routine; a failure of the sandbox is worth a look, and retried or reported.
  public var logLevel: Logger.Level { kind == .answer ? .debug : .warning }
}

extension LocalError: ReportedError {
  /// This machine's disk is failing or full: nothing retries it, someone must act.
  public var logLevel: Logger.Level { .error }
}
