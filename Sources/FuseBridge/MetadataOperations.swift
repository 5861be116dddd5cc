import CFuse
import FilesystemCore
import Glibc

/// symlink, readlink, link, mknod and access: each answered from a task when the filesystem
/// core is done.
enum MetadataOperations {
  static func register(in operations: inout fuse_lowlevel_ops) {
    operations.symlink = symlink
    operations.readlink = readlink
    operations.link = link
    operations.mknod = mknod
    operations.access = access
  }

  private static let symlink:
    @convention(c) (fuse_req_t?, UnsafePointer<CChar>?, fuse_ino_t, UnsafePointer<CChar>?) -> Void =
      { request, target, parent, name in
        let dispatcher = RequestDispatcher.of(request)
        let target = String(cString: target!)
        let name = String(cString: name!)
        dispatcher.answer(request, "symlink") { reply in
          let entry = try await dispatcher.filesystem.makeSymlink(
            parent: UInt64(parent), name: name, target: target)
          reply.replyEntry(dispatcher.entryParameters(entry))
        }
      }

  private static let readlink: @convention(c) (fuse_req_t?, fuse_ino_t) -> Void = {
    request, inode in
    let dispatcher = RequestDispatcher.of(request)
    dispatcher.answer(request, "readlink") { reply in
      let target = try await dispatcher.filesystem.readLink(UInt64(inode))
      reply.replyLink(target)
    }
  }

  private static let link:
    @convention(c) (fuse_req_t?, fuse_ino_t, fuse_ino_t, UnsafePointer<CChar>?) -> Void = {
      request, inode, newParent, newName in
      let dispatcher = RequestDispatcher.of(request)
      let newName = String(cString: newName!)
      dispatcher.answer(request, "link") { reply in
        let entry = try await dispatcher.filesystem.makeLink(
          UInt64(inode), newParent: UInt64(newParent), newName: newName)
        reply.replyEntry(dispatcher.entryParameters(entry))
      }
    }

  private static let mknod:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?, mode_t, dev_t) -> Void = {
      request, parent, name, mode, device in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      dispatcher.answer(request, "mknod") { reply in
        let entry = try await dispatcher.filesystem.makeNode(
          parent: UInt64(parent), name: name, mode: UInt32(mode), device: UInt64(device))
        reply.replyEntry(dispatcher.entryParameters(entry))
      }
    }

  private static let access: @convention(c) (fuse_req_t?, fuse_ino_t, Int32) -> Void = {
    request, inode, mask in
    let dispatcher = RequestDispatcher.of(request)
    let context = fuse_req_ctx(request)
    let uid = context?.pointee.uid ?? 0
    let gid = context?.pointee.gid ?? 0
    dispatcher.answer(request, "access") { reply in
      try await dispatcher.filesystem.checkAccess(UInt64(inode), mask: mask, uid: uid, gid: gid)
      reply.replyError(0)
    }
  }
}

extension FuseRequest {
  func replyLink(_ target: String) {
    _ = fuse_reply_readlink(raw, target)
  }
}
