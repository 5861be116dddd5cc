import CFuse
import Foundation
import Logging
import Synchronization

/// libfuse's messages (option errors, mount failures, the `-d` request log) go to our logger
/// instead of raw stderr, and the last error is kept so a failure can be reported in one line.
enum LibfuseLog {
  private struct State {
    var logger: Logger?
    var lastError: String?
    /// Before the mount, errors are kept for the one-line failure message instead of logged.
    var mounted = false
    var pending = ""
  }
  private static let state = Mutex(State())

  static func install(_ logger: Logger) {
    state.withLock { $0.logger = logger }
    fuse_set_log_func { level, format, arguments in
      guard let format, let arguments else { return }
      var buffer = [CChar](repeating: 0, count: 1024)
      _ = vsnprintf(&buffer, buffer.count, format, arguments)
      LibfuseLog.receive(
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
        level: level)
    }
  }

  /// libfuse sometimes builds one line from several calls; a line ends with a newline.
  private static func receive(_ fragment: String, level: fuse_log_level) {
    let severe = level.rawValue <= FUSE_LOG_ERR.rawValue
    let (line, logger) = state.withLock { state -> (String?, Logger?) in
      state.pending += fragment
      guard fragment.hasSuffix("\n") else { return (nil, nil) }
      let line = state.pending.trimmingCharacters(in: .whitespacesAndNewlines)
      state.pending = ""
      if severe && !state.mounted {
        state.lastError = line
        return (nil, nil)
      }
      return (line, state.logger)
    }
    guard let line, !line.isEmpty, let logger else { return }
    if severe {
      logger.error("libfuse: \(line)")
    } else if level.rawValue <= FUSE_LOG_WARNING.rawValue {
      logger.warning("libfuse: \(line)")
    } else if level.rawValue <= FUSE_LOG_INFO.rawValue {
      logger.info("libfuse: \(line)")
    } else {
      logger.debug("libfuse: \(line)")
    }
  }

  /// From now on libfuse's errors are logged as they come.
  static func mounted() {
    state.withLock { $0.mounted = true }
  }

  /// The last error libfuse reported before the mount, cleared by reading it.
  static func takeLastError() -> String? {
    state.withLock { state in
      defer { state.lastError = nil }
      return state.lastError
    }
  }
}
