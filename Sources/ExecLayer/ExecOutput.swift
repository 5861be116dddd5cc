import Backend

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What one fallback job printed (see `ExecScript`).
public struct ExecResult: Sendable {
  public var failure: String?
  public var stat: String?
  public var linkText: String?
  public var statfs: String?
  /// A listed folder's entries: a stat line, a space, the name.
  public var entries: [String] = []

  /// Throws the failure's errno, else returns the stat line as attributes.
  public func attributes(context: String) throws -> RemoteAttributes {
    try check(context: context)
    guard let stat, let attributes = ExecOutput.attributes(statLine: stat) else {
      throw RemoteError(errno: EIO, "\(context): no usable stat in the answer: \(stat ?? "")")
    }
    return attributes
  }

  public func check(context: String) throws {
    if let failure {
      throw RemoteError(errno: ExecOutput.errno(describedBy: failure), "\(context): \(failure)")
    }
  }
}

public enum ExecOutput {
  /// Splits the script's stdout into per-job results (index = job id).
  public static func results(_ stdout: [UInt8], jobs: Int) -> [ExecResult] {
    var results = [ExecResult](repeating: ExecResult(), count: jobs)
    let records = stdout.split(separator: 1, omittingEmptySubsequences: true)
    for record in records {
      guard let newline = record.firstIndex(of: UInt8(ascii: "\n")) else { continue }
      let header = record[record.startIndex..<newline]
      guard let kind = header.first,
        let id = Int(String(decoding: header.dropFirst(), as: UTF8.self)),
        id >= 0, id < jobs
      else { continue }
      var payload = record[(newline + 1)...]
      if payload.last == UInt8(ascii: "\n") { payload = payload.dropLast() }
      let text = String(decoding: payload, as: UTF8.self)
      switch kind {
      case UInt8(ascii: "F"): results[id].failure = text
      case UInt8(ascii: "S"): results[id].stat = text
      case UInt8(ascii: "L"): results[id].linkText = text
      case UInt8(ascii: "V"): results[id].statfs = text
      case UInt8(ascii: "E"): results[id].entries.append(text)
      default: break
      }
    }
    return results
  }

  /// The errno of a coreutils/dash message (`LC_ALL=C`): "chmod: changing permissions of 'x':
  /// Operation not permitted". The last `: ` part names the error; the path may contain anything.
  public static func errno(describedBy message: String) -> Int32 {
    let firstLine = message.split(separator: "\n").first.map(String.init) ?? message
    let last = firstLine.components(separatedBy: ": ").last ?? firstLine
    for text in [last, firstLine, message] {
      let lowered = text.lowercased()
      for (phrase, number) in extraPhrases where lowered.contains(phrase) { return number }
      if let number = ErrnoText.errno(describedBy: text) { return number }
    }
    return EIO
  }

  private static let extraPhrases: [(String, Int32)] = [
    ("operation not supported", EOPNOTSUPP),
    ("directory nonexistent", ENOENT),  // dash: a redirection into a missing directory
    ("hard link not allowed for directory", EPERM),
    ("too many links", EMLINK),
    ("text file busy", ETXTBSY),
    ("file too large", EFBIG),
    ("invalid argument", EINVAL),
    ("stale file handle", ESTALE),
  ]

  /// `%f %h %u %g %s %b %i %.9X %.9Y %.9Z %t %T` (hex mode, nlink, uid, gid, size, 512-byte
  /// blocks, inode, atime, mtime, ctime, hex major and minor).
  public static func attributes(statLine: String) -> RemoteAttributes? {
    let fields = statLine.split(separator: " ").map(String.init)
    guard fields.count == 12, let mode = UInt32(fields[0], radix: 16),
      let nlink = UInt32(fields[1]), let uid = UInt32(fields[2]), let gid = UInt32(fields[3]),
      let size = UInt64(fields[4]), let blocks = UInt64(fields[5]), let inode = UInt64(fields[6]),
      let accessTime = time(fields[7]), let modificationTime = time(fields[8]),
      let changeTime = time(fields[9]), let major = UInt64(fields[10], radix: 16),
      let minor = UInt64(fields[11], radix: 16)
    else { return nil }
    let type = RemoteFileType(mode: mode)
    let device =
      ((major & 0xFFF) << 8) | (minor & 0xFF) | ((minor & ~0xFF) << 12) | ((major & ~0xFFF) << 32)
    return RemoteAttributes(
      type: type, size: size, permissions: mode & 0o7777, modificationTime: modificationTime,
      accessTime: accessTime, changeTime: changeTime, inode: inode, linkCount: nlink, uid: uid,
      gid: gid, blocks: blocks,
      deviceNumber: type == .characterDevice || type == .blockDevice ? device : nil)
  }

  /// A listing record: the 12 fields of a stat line, then the entry's path (the rest, spaces
  /// kept), whose name follows its last slash.
  public static func entry(_ record: String) -> RemoteEntry? {
    var fieldEnd = record.startIndex
    for _ in 0..<12 {
      guard let space = record[fieldEnd...].firstIndex(of: " ") else { return nil }
      fieldEnd = record.index(after: space)
    }
    let path = record[fieldEnd...]
    let name = String(path.lastIndex(of: "/").map { path[path.index(after: $0)...] } ?? path)
    guard !name.isEmpty, name != ".", name != "..",
      let attributes = attributes(statLine: String(record[..<record.index(before: fieldEnd)]))
    else { return nil }
    return RemoteEntry(name: name, attributes: attributes)
  }

  /// `SECONDS.NANOSECONDS`, possibly negative (`-0.250000000` is -1 s + 750000000 ns).
  public static func time(_ text: String) -> RemoteTime? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard let whole = parts.first, var seconds = Int64(whole) else { return nil }
    var nanoseconds: Int32 = 0
    if parts.count == 2 {
      let digits = String(parts[1].prefix(9))
      guard let value = Int32(digits + String(repeating: "0", count: 9 - digits.count)) else {
        return nil
      }
      nanoseconds = value
    }
    if whole.hasPrefix("-") && nanoseconds > 0 {
      seconds -= 1
      nanoseconds = 1_000_000_000 - nanoseconds
    }
    return RemoteTime(seconds: seconds, nanoseconds: nanoseconds)
  }

  /// `%S %b %f %a %c %d %l` of `stat -f`.
  public static func statistics(_ line: String) -> RemoteFilesystemStatistics? {
    let numbers = line.split(separator: " ").compactMap { UInt64($0) }
    guard numbers.count == 7 else { return nil }
    let unit = numbers[0]
    var result = RemoteFilesystemStatistics(
      totalBytes: numbers[1] * unit, usedBytes: (numbers[1] - min(numbers[1], numbers[2])) * unit)
    result.blockSize = unit
    result.totalBlocks = numbers[1]
    result.freeBlocks = numbers[2]
    result.availableBlocks = numbers[3]
    result.totalFiles = numbers[4]
    result.freeFiles = numbers[5]
    result.availableFiles = numbers[5]
    result.maximumNameLength = numbers[6]
    return result
  }
}
