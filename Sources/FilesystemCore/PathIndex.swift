import Backend

/// Paths → inode numbers, with each directory's known children, so a removal or a rename
/// touches just the subtree it moves: O(subtree), not O(every path the mount knows). rsync and
/// rm -rf do one per file; a scan of 20,000 paths each time made them quadratic.
struct PathIndex {
  private var inodes: [String: UInt64] = [:]
  private var children: [String: Set<String>] = [:]

  subscript(path: String) -> UInt64? {
    get { inodes[path] }
    set {
      if let newValue {
        if inodes.updateValue(newValue, forKey: path) == nil, path != "/" {
          children[RemotePath.parent(of: path), default: []].insert(path)
        }
      } else if inodes.removeValue(forKey: path) != nil, path != "/" {
        let parent = RemotePath.parent(of: path)
        children[parent]?.remove(path)
        if children[parent]?.isEmpty == true { children[parent] = nil }
      }
    }
  }

  /// `root` and every known path below it, with their inodes.
  func subtree(_ root: String) -> [(path: String, inode: UInt64)] {
    var found: [(String, UInt64)] = []
    var pending = [root]
    while let path = pending.popLast() {
      if let inode = inodes[path] { found.append((path, inode)) }
      if let below = children[path] { pending.append(contentsOf: below) }
    }
    return found
  }

  /// The known paths directly below `directory`, with their inodes.
  func children(of directory: String) -> [(path: String, inode: UInt64)] {
    (children[directory] ?? []).compactMap { path in inodes[path].map { (path, $0) } }
  }

  /// Any path of `inode` (a hard link's other name); O(paths), for the rare hard link.
  func anyPath(of inode: UInt64) -> String? {
    inodes.first(where: { $0.value == inode })?.key
  }

  /// Every path of `inode`; O(paths), for the rare hard link.
  func paths(of inode: UInt64) -> [String] {
    inodes.filter { $0.value == inode }.map(\.key)
  }
}
