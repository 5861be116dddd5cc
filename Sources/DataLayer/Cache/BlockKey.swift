import Backend

/// One block of one version of a remote file. The version (size and mtime in ns) is part of the
/// key, so a file that changed remotely never finds its old blocks.
public struct BlockKey: Hashable, Sendable, CustomStringConvertible {
  public var path: String
  public var version: RemoteFileVersion
  public var index: UInt64

  public init(path: String, version: RemoteFileVersion, index: UInt64) {
    self.path = path
    self.version = version
    self.index = index
  }

  public var description: String {
    "\(path)@\(version.size):\(version.modificationTime.seconds).\(version.modificationTime.nanoseconds)#\(index)"
  }
}

/// How files are cut into blocks: block `i` covers `[i * size, (i + 1) * size)`.
public struct BlockGeometry: Sendable, Equatable {
  public let blockSize: Int

  public init(blockSize: Int) {
    precondition(blockSize > 0, "block size must be positive")
    self.blockSize = blockSize
  }

  /// The first byte of block `index`.
  public func start(of index: UInt64) -> UInt64 { index * UInt64(blockSize) }

  /// The block holding byte `offset`.
  public func index(of offset: UInt64) -> UInt64 { offset / UInt64(blockSize) }

  /// How many blocks a file of `size` bytes has (0 for an empty file).
  public func blockCount(forSize size: UInt64) -> UInt64 {
    (size + UInt64(blockSize) - 1) / UInt64(blockSize)
  }

  /// The bytes block `index` must hold for a file of `size` bytes; fewer is a short fetch.
  public func expectedLength(of index: UInt64, size: UInt64) -> Int {
    let start = start(of: index)
    guard start < size else { return 0 }
    return Int(min(UInt64(blockSize), size - start))
  }

  /// The blocks touched by `[offset, end)`, empty when `end <= offset`.
  public func indices(from offset: UInt64, to end: UInt64) -> Range<UInt64> {
    guard end > offset else { return index(of: offset)..<index(of: offset) }
    return index(of: offset)..<(index(of: end - 1) + 1)
  }
}
