import CFuse
import FilesystemCore
import Glibc

/// `readdir` and `readdirplus`: entries packed into the kernel's buffer as far as they fit.
enum DirectoryReplies {
  static func read(
    _ request: fuse_req_t?, inode: fuse_ino_t, handle: UInt64, size: Int, offset: off_t,
    plus: Bool
  ) {
    let dispatcher = RequestDispatcher.of(request)
    dispatcher.answer(request, plus ? "readdirplus" : "readdir") { reply in
      let entries = try await dispatcher.filesystem.readDirectory(
        inode: UInt64(inode), handle: handle, offset: Int(offset))
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
      defer { buffer.deallocate() }
      var used = 0
      var position = Int(offset)
      for entry in entries {
        position += 1  // the offset of the entry after this one
        let remaining = size - used
        let target = (buffer.baseAddress! + used).assumingMemoryBound(to: CChar.self)
        let needed = entry.name.withCString { name in
          if plus {
            var parameters = parameters(for: entry, dispatcher: dispatcher)
            return fuse_add_direntry_plus(
              reply.raw, target, remaining, name, &parameters, off_t(position))
          }
          var attributes = entry.attributes
          return fuse_add_direntry(reply.raw, target, remaining, name, &attributes, off_t(position))
        }
        guard needed <= remaining else { break }
        used += needed
        // The kernel now holds a reference to every entry it got, except `.` and `..`.
        if plus && !entry.isDotEntry { dispatcher.filesystem.addLookup(entry.inode) }
      }
      reply.replyBuffer(UnsafeRawBufferPointer(rebasing: buffer[..<used]))
    }
  }

  /// `.` and `..` carry no entry (inode 0), only their attributes: the kernel does not link them.
  private static func parameters(for entry: DirectoryEntry, dispatcher: RequestDispatcher)
    -> fuse_entry_param
  {
    if entry.isDotEntry {
      var parameters = fuse_entry_param()
      parameters.attr = entry.attributes
      return parameters
    }
    return dispatcher.entryParameters(inode: entry.inode, attributes: entry.attributes)
  }
}
