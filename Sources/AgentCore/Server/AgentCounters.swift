import Synchronization

/// Requests served and request-body bytes received since start: what benchmarks and tests read
/// to count round trips and bytes a client sent (extension method `Counters`).
public final class AgentCounters: Sendable {
  private let requestCount = Atomic<UInt64>(0)
  private let receivedBytes = Atomic<UInt64>(0)

  public init() {}

  public var requests: UInt64 { requestCount.load(ordering: .relaxed) }
  public var bytesIn: UInt64 { receivedBytes.load(ordering: .relaxed) }

  func countRequest() { requestCount.add(1, ordering: .relaxed) }
  func countReceived(_ bytes: Int) { receivedBytes.add(UInt64(bytes), ordering: .relaxed) }
}
