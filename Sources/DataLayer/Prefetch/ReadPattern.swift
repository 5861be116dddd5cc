/// Tells, for one open file, how far ahead of its reads to fetch.
///
/// A read that starts near where the reader is (within the current window, backward or forward)
/// continues a sequential run and doubles the window, from `initialWindow` up to `maximumWindow`.
/// The kernel sends readahead requests in parallel and slightly out of order, and tools re-read a
/// little; neither resets the run. A read anywhere else is random: window 0, only its own blocks
/// are fetched, and the next read nearby starts a new run.
///
/// Invariant: `window == 0 || initialWindow <= window <= maximumWindow`; `frontier` is the
/// highest end offset read in the current run.
public struct ReadPattern: Sendable, Equatable {
  public let initialWindow: UInt64
  public let maximumWindow: UInt64
  public private(set) var window: UInt64 = 0
  public private(set) var frontier: UInt64?

  public init(initialWindow: UInt64, maximumWindow: UInt64) {
    self.initialWindow = min(initialWindow, maximumWindow)
    self.maximumWindow = maximumWindow
  }

  /// Records a read of `length` bytes at `offset`; returns the window to fetch beyond `frontier`.
  public mutating func record(offset: UInt64, length: Int) -> UInt64 {
    let end = offset + UInt64(max(length, 0))
    guard let frontier else {
      // The first read: start small, as most files are read from their start to their end.
      self.frontier = end
      window = initialWindow
      return window
    }
    let reach = max(window, initialWindow)
    let lower = frontier > reach ? frontier - reach : 0
    if offset >= lower && offset <= frontier + reach {
      window = window == 0 ? initialWindow : min(window * 2, maximumWindow)
      self.frontier = max(frontier, end)
    } else {
      window = 0
      self.frontier = end
    }
    return window
  }
}
