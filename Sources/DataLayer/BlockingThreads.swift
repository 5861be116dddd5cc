import Glibc

/// Marks threads that may block on local disk work: libfuse's own request threads, while they
/// run a request's first, synchronous part. Code reached from there (a close's journal fsync)
/// does the work inline instead of handing it to another thread and waiting for the way back,
/// two thread wakeups that cost more than the fsync itself. Never set on Swift's pool.
public enum BlockingThreads {
  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
  }()

  /// Runs `body` with the current thread marked.
  public static func allowing<T>(_ body: () throws -> T) rethrows -> T {
    pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
    defer { pthread_setspecific(key, nil) }
    return try body()
  }

  public static var currentMayBlock: Bool { pthread_getspecific(key) != nil }
}
