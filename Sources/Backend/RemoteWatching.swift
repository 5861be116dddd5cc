/// What happened to one name inside a watched directory (envd's EventType).
public enum RemoteChange: Sendable, Equatable {
  case created
  case removed
  /// Moved away (its new name, if inside the directory, comes as `created`).
  case renamed
  case written
  case attributesChanged
}

/// One message of a directory watch.
public enum RemoteWatchEvent: Sendable, Equatable {
  /// The watch is armed: changes from now on are reported.
  case started
  /// `name` is relative to the watched directory ("." or "" for the directory itself).
  case changed(name: String, RemoteChange)
}

/// A backend that can tell of changes made inside the sandbox (`RemoteCapabilities.watch`).
public protocol RemoteWatching: Sendable {
  /// Watches one directory (not its subdirectories). The stream ends, or throws, when the watch
  /// breaks; ENOENT or ENOTDIR when the directory is gone. Ending the iteration ends the watch.
  func watchDirectory(_ path: String) -> AsyncThrowingStream<RemoteWatchEvent, any Error>
}
