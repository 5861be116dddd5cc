import Backend
import Glibc

/// Answers the bridge gives on libfuse's own thread, without a task, when the caches already
/// hold them: `ls -l`, `find` and `git status` are mostly these.
extension Filesystem {
  /// Local. What getattr answers when the attributes are cached and fresh and no staging file
  /// is involved; nil: ask `attributes(of:)`.
  public func cachedAttributes(of inode: UInt64) -> Glibc.stat? {
    guard openFiles.staging(of: inode) == nil,
      let fresh = inodes.attributes(of: inode, maxAge: configuration.attributeLifetime)
    else { return nil }
    return shownStat(for: fresh, inode: inode)
  }

  public enum CachedLookup: Sendable {
    case found(Entry)
    case missing
  }

  /// Local. What lookup answers when a fresh listing of the parent holds the answer; nil: ask
  /// `lookUp(parent:name:)`.
  public func cachedLookUp(parent: UInt64, name: String) -> CachedLookup? {
    guard let parentPath = inodes.path(of: parent), let path = try? childPath(parent, name) else {
      return nil
    }
    switch directories.lookUp(name, in: parentPath) {
    case .found(let attributes): return .found(entry(for: path, attributes: attributes))
    case .missing: return .missing
    case .unknown: return nil
    }
  }
}
