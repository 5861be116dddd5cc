import Glibc

/// One record read from an inotify descriptor.
struct InotifyEvent: Sendable, Equatable {
  var wd: Int32
  var mask: UInt32
  var cookie: UInt32
  /// Raw name bytes (no trailing NULs); empty for events on the watched directory itself.
  var name: [UInt8]

  func has(_ flag: Int32) -> Bool { mask & UInt32(bitPattern: flag) != 0 }

  /// Parses the records in `bytes` (a whole `read` result: the kernel never splits a record).
  static func parse(_ bytes: UnsafeRawBufferPointer) -> [InotifyEvent] {
    let headerSize = 16  // int wd; uint32 mask, cookie, len
    var events: [InotifyEvent] = []
    var offset = 0
    while offset + headerSize <= bytes.count {
      let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
      let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
      let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
      let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
      let nameStart = offset + headerSize
      guard nameStart + length <= bytes.count else { break }
      var name = Array(bytes[nameStart..<nameStart + length])
      while name.last == 0 { name.removeLast() }
      events.append(InotifyEvent(wd: wd, mask: mask, cookie: cookie, name: name))
      offset = nameStart + length
    }
    return events
  }

  /// fsnotify's mapping to operations, in the order envd emits them:
  /// CREATE, RENAME, CHMOD, WRITE, REMOVE.
  var eventTypes: [String] {
    var types: [String] = []
    if has(IN_CREATE) || has(IN_MOVED_TO) { types.append("EVENT_TYPE_CREATE") }
    if has(IN_MOVE_SELF) || has(IN_MOVED_FROM) { types.append("EVENT_TYPE_RENAME") }
    if has(IN_ATTRIB) { types.append("EVENT_TYPE_CHMOD") }
    if has(IN_MODIFY) { types.append("EVENT_TYPE_WRITE") }
    if has(IN_DELETE_SELF) || has(IN_DELETE) { types.append("EVENT_TYPE_REMOVE") }
    return types
  }

  /// The mask fsnotify watches with.
  static let watchMask: UInt32 = UInt32(
    bitPattern: IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_ATTRIB | IN_MODIFY | IN_MOVE_SELF
      | IN_DELETE | IN_DELETE_SELF)
}
