import Backend
import Synchronization

/// Notices files of one directory being opened in listing order (`grep -r`, `tar c`, `cp -r`,
/// `cat dir/*`) and names the next few to prefetch, so their first blocks arrive in parallel
/// instead of one round trip per file.
///
/// Invariant per directory: `last` is the listing position of the file opened last, `streak`
/// how many opens in a row came at or just after it, and `requestedThrough` the position up to
/// which files were already named.
final class FileReadAhead: Sendable {
  /// At 20 ms RTT, `grep -r` over 8,000 small files took 21 s with 16 and takes 12 s with 32;
  /// on loopback the CPU is the limit either way.
  static let window = 32
  private static let directoryLimit = 256

  private struct Progress {
    var last: Int
    var streak = 0
    var requestedThrough = 0
  }

  private let progress = Mutex<[String: Progress]>([:])

  /// Records a read-only open of `name` in `directory`, whose listing is `entries`; returns the
  /// files to prefetch (regular, non-empty, after it in listing order).
  func opened(_ name: String, in directory: String, position: Int, entries: [RemoteEntry])
    -> [RemoteEntry]
  {
    progress.withLock { progress in
      if progress.count >= Self.directoryLimit && progress[directory] == nil {
        progress.removeAll(keepingCapacity: true)
      }
      var state = progress[directory] ?? Progress(last: position)
      if position > state.last && position - state.last <= 2 {
        state.streak += 1
      } else if position != state.last {
        state = Progress(last: position)
      }
      state.last = position
      defer { progress[directory] = state }
      guard state.streak >= 1 else { return [] }
      let first = max(position + 1, state.requestedThrough)
      let end = min(entries.count, position + 1 + Self.window)
      guard first < end else { return [] }
      state.requestedThrough = end
      return entries[first..<end].filter {
        $0.attributes.type == .regular && $0.attributes.size > 0
      }
    }
  }
}

extension Filesystem {
  /// A read-only open of `path`: if files of its directory are being opened in listing order,
  /// the reader prefetches the first blocks of the next ones.
  func readAheadOfNextFiles(after path: String) {
    let directory = RemotePath.parent(of: path)
    let name = RemotePath.name(of: path)
    guard let (position, entries) = directories.position(of: name, in: directory) else { return }
    for entry in fileReadAhead.opened(name, in: directory, position: position, entries: entries) {
      reader.prefetchStart(
        of: RemotePath.join(directory, entry.name), version: entry.attributes.version)
    }
  }
}
