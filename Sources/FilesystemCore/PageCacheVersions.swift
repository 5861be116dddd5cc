import Backend
import Synchronization

/// Per inode, the version of the content the kernel's page cache may hold, for close-to-open
/// consistency as NFS gives it: an open that sees the same version (size and mtime, from
/// attributes no older than the attribute timeout) keeps the page cache (FOPEN_KEEP_CACHE), so
/// a re-read costs no request; an open that sees another version drops it.
///
/// Invariant: an inode has an entry only while its content is known to equal that version, so
/// changes through this mount (writers, truncate) remove the entry before they happen.
final class PageCacheVersions: Sendable {
  private let versions = Mutex<[UInt64: RemoteFileVersion]>([:])

  /// Whether a read-only open that saw `version` may keep the page cache; remembers `version`.
  func keepOnOpen(_ inode: UInt64, version: RemoteFileVersion) -> Bool {
    versions.withLock { versions in
      let kept = versions[inode] == version
      versions[inode] = version
      return kept
    }
  }

  /// The kernel's pages of `inode` are `version`'s (written through this mount and uploaded).
  func remember(_ inode: UInt64, version: RemoteFileVersion) {
    versions.withLock { $0[inode] = version }
  }

  /// The content of `inode` changes through this mount: the next open must not keep the cache.
  func forget(_ inode: UInt64) {
    _ = versions.withLock { $0.removeValue(forKey: inode) }
  }
}
