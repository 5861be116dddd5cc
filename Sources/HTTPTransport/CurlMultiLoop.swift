import CCurl
import Foundation

/// Drives every transfer of one backend through one curl multi handle on one dedicated thread,
/// so connections are pooled and reused and the cooperative pool never blocks on the network.
///
/// Callers hand a configured `CurlTransfer` to `perform`, which queues it under a lock and wakes
/// the thread with `curl_multi_wakeup`; the thread resumes the caller's continuation when curl
/// reports the transfer done.
///
/// The thread is also a task executor, for short requests that mostly wait on one round trip:
/// a task that prefers it queues its transfer and is resumed on this thread, with no wake-up of
/// a pool thread on either side. Such tasks must stay light, since transfers wait while they run.
public final class CurlMultiLoop: TaskExecutor, @unchecked Sendable {
  private let multi: UnsafeMutableRawPointer
  private let lock = NSLock()
  // Guarded by `lock`. Every curl_multi_wakeup happens under it while `stopRequested` is false,
  // so none can race the thread's curl_multi_cleanup.
  private var incoming: [CurlTransfer] = []
  private var cancellations: [CurlTransfer] = []
  private var stopRequested = false
  private var stopWaitOver = false
  private var exitWaiters: [CheckedContinuation<Void, Never>] = []
  private var jobs: [UnownedJob] = []
  private var loopExited = false
  private var loopThread: pthread_t?
  // Touched by the loop thread only.
  private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
  private let finished = DispatchSemaphore(value: 0)

  /// HTTP/1.1 carries one transfer per connection: file read-ahead keeps up to 32 small GETs in
  /// flight, which pays at real round-trip times. (HTTP/2 multiplexes them on one.)
  public static let defaultMaxHostConnections = 32

  public init(maxHostConnections: Int = defaultMaxHostConnections) throws {
    CurlGlobal.initializeOnce()
    guard let multi = curl_multi_init() else { throw CurlSetupError("curl_multi_init failed") }
    self.multi = multi
    _ = sandbox_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxHostConnections)
    // Keep idle connections for reuse even when few transfers are in flight.
    _ = sandbox_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxHostConnections * 2)
    _ = sandbox_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX)
    Thread { [self] in
      Thread.current.name = "curl-multi"  // set from inside: only then does Linux see it
      run()
    }.start()
  }

  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    let queued = lock.withLock {
      guard !loopExited else { return false }
      jobs.append(job)
      wakeLoopFromOutside()
      return true
    }
    // Stragglers after shutdown (tasks resumed with the shut-down response) run on the pool.
    if !queued {
      let executor = asUnownedTaskExecutor()
      DispatchQueue.global().async { job.runSynchronously(on: executor) }
    }
  }

  /// Runs `transfer` to completion. Cancelling the task aborts it (the response says `cancelled`).
  public func perform(_ transfer: CurlTransfer) async -> HTTPResponse {
    await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        let accepted = lock.withLock {
          guard !stopRequested else { return false }
          transfer.continuation = continuation
          incoming.append(transfer)
          wakeLoopFromOutside()
          return true
        }
        if !accepted { continuation.resume(returning: Self.shutDownResponse) }
      }
    } onCancel: {
      lock.withLock {
        guard !stopRequested else { return }
        transfer.cancelRequested = true
        cancellations.append(transfer)
        curl_multi_wakeup(multi)
      }
    }
  }

  /// Wakes the loop's poll (called under `lock`). The loop thread itself looks at its queues
  /// before it polls again, so it skips the syscall and the extra turn of the loop.
  private func wakeLoopFromOutside() {
    if !onLoopThread { curl_multi_wakeup(multi) }
  }

  /// Called under `lock`.
  private var onLoopThread: Bool {
    guard let loopThread else { return false }
    return pthread_equal(loopThread, pthread_self()) != 0
  }

  /// Fails pending and running transfers and stops the thread; blocks up to 5 s for it. Only for
  /// synchronous callers (deinit): async code uses `shutdownWithoutBlocking`.
  public func shutdown() {
    guard requestStop() else { return }
    // On the loop thread (a task there dropped the last reference), the loop stops as soon as
    // this returns; waiting would only sit out the timeout.
    if lock.withLock({ onLoopThread }) { return }
    _ = finished.wait(timeout: .now() + 5)
  }

  /// `shutdown` that suspends instead of blocking a cooperative thread; gives up after 5 s.
  public func shutdownWithoutBlocking() async {
    _ = requestStop()
    await withCheckedContinuation { continuation in
      let exited = lock.withLock {
        if !stopWaitOver { exitWaiters.append(continuation) }
        return stopWaitOver
      }
      if exited { continuation.resume() }
    }
  }

  /// Whether this call was the first to ask.
  private func requestStop() -> Bool {
    let first = lock.withLock {
      guard !stopRequested else { return false }
      stopRequested = true
      curl_multi_wakeup(multi)
      return true
    }
    if first {
      Task { [self] in
        try? await Task.sleep(for: .seconds(5))
        resumeExitWaiters()
      }
    }
    return first
  }

  /// At the thread's exit or after 5 s, whichever is first; later waiters do not wait.
  private func resumeExitWaiters() {
    let waiters = lock.withLock {
      stopWaitOver = true
      defer { exitWaiters.removeAll() }
      return exitWaiters
    }
    for waiter in waiters { waiter.resume() }
  }

  private static let shutDownResponse = HTTPResponse(
    curlCode: CURLE_ABORTED_BY_CALLBACK.rawValue, curlMessage: "the backend was shut down",
    osErrno: 0,
    cancelled: false, status: 0, body: [], bytesReceived: 0, contentRange: nil,
    contentEncoding: nil,
    limitReached: false, localFailure: nil)

  // MARK: the loop thread

  private func run() {
    lock.withLock { loopThread = pthread_self() }
    var running: Int32 = 0
    while true {
      runQueuedJobs()
      let batch = lock.withLock { () -> ([(CurlTransfer, Bool)], [CurlTransfer])? in
        guard !stopRequested else { return nil }  // what is queued now is failed by drainAfterStop
        defer {
          incoming.removeAll(keepingCapacity: true)
          cancellations.removeAll(keepingCapacity: true)
        }
        // A cancel that raced ahead of its own add is seen here through the flag.
        return (incoming.map { ($0, $0.cancelRequested) }, cancellations)
      }
      guard let (added, cancelled) = batch else { break }
      for (transfer, isCancelled) in added {
        if isCancelled {
          complete(transfer, code: CURLE_ABORTED_BY_CALLBACK, cancelled: true)
        } else if curl_multi_add_handle(multi, transfer.easy) == CURLM_OK {
          active[transfer.easy] = transfer
        } else {
          complete(transfer, code: CURLE_FAILED_INIT, cancelled: false)
        }
      }
      for transfer in cancelled where active.removeValue(forKey: transfer.easy) != nil {
        curl_multi_remove_handle(multi, transfer.easy)
        complete(transfer, code: CURLE_ABORTED_BY_CALLBACK, cancelled: true)
      }
      curl_multi_perform(multi, &running)
      collectFinished()
      // Jobs resumed just now, and transfers they queued, did not wake the poll.
      if lock.withLock({ !jobs.isEmpty || !incoming.isEmpty }) { continue }
      curl_multi_poll(multi, nil, 0, 1000, nil)
    }
    drainAfterStop()
  }

  private func runQueuedJobs() {
    let ready = lock.withLock {
      defer { jobs.removeAll(keepingCapacity: true) }
      return jobs
    }
    for job in ready { job.runSynchronously(on: asUnownedTaskExecutor()) }
  }

  private func collectFinished() {
    var remaining: Int32 = 0
    while let message = curl_multi_info_read(multi, &remaining) {
      guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else {
        continue
      }
      let code = sandbox_curl_msg_result(message)
      curl_multi_remove_handle(multi, easy)
      if let transfer = active.removeValue(forKey: easy) {
        complete(transfer, code: code, cancelled: false)
      }
    }
  }

  private func complete(_ transfer: CurlTransfer, code: CURLcode, cancelled: Bool) {
    let response = transfer.response(curlCode: code, cancelled: cancelled)
    let continuation = transfer.continuation
    transfer.continuation = nil
    continuation?.resume(returning: response)
  }

  private func drainAfterStop() {
    let queued = lock.withLock {
      defer { incoming.removeAll() }
      return incoming
    }
    for transfer in Array(active.values) + queued {
      curl_multi_remove_handle(multi, transfer.easy)
      let continuation = transfer.continuation
      transfer.continuation = nil
      continuation?.resume(returning: Self.shutDownResponse)
    }
    active.removeAll()
    // The tasks just resumed run here; any later ones go to the pool (see `enqueue`).
    let leftover = lock.withLock {
      loopExited = true
      defer { jobs.removeAll() }
      return jobs
    }
    for job in leftover { job.runSynchronously(on: asUnownedTaskExecutor()) }
    curl_multi_cleanup(multi)
    finished.signal()
    resumeExitWaiters()
  }
}

enum CurlGlobal {
  private static let initialized: Bool = sandbox_curl_global_init_default() == CURLE_OK

  /// curl_global_init is not thread-safe on every build; Swift's lazy static runs it once.
  static func initializeOnce() { _ = initialized }
}
