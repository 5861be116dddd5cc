import CFuse
import FilesystemCore
import Glibc

/// The libfuse3 low-level operation table. Each callback copies what it needs out of C memory
/// and either answers at once (local work: forget, write, staged reads, directory handles) or
/// starts a task that answers when the filesystem core is done.
enum LowLevelOperations {
  static func make() -> fuse_lowlevel_ops {
    var operations = fuse_lowlevel_ops()
    operations.`init` = { userdata, connection in
      guard let userdata, let connection else { return }
      let dispatcher = Unmanaged<RequestDispatcher>.fromOpaque(userdata).takeUnretainedValue()
      ConnectionSettings.negotiate(
        connection, readaheadBytes: dispatcher.readaheadBytes, logger: dispatcher.logger)
    }
    operations.destroy = { _ in }
    operations.lookup = lookup
    operations.forget = { request, inode, count in
      RequestDispatcher.of(request).filesystem.forget(UInt64(inode), count: count)
      fuse_reply_none(request)
    }
    operations.forget_multi = { request, count, forgets in
      let filesystem = RequestDispatcher.of(request).filesystem
      if let forgets {
        for item in UnsafeBufferPointer(start: forgets, count: count) {
          filesystem.forget(UInt64(item.ino), count: item.nlookup)
        }
      }
      fuse_reply_none(request)
    }
    operations.getattr = getattr
    operations.setattr = setattr
    operations.mkdir = mkdir
    operations.unlink = unlink
    operations.rmdir = rmdir
    operations.rename = rename
    operations.open = open
    operations.create = create
    operations.read = read
    operations.write = write
    operations.flush = flush
    operations.release = release
    operations.fsync = fsync
    operations.fsyncdir = { request, inode, _, _ in
      let dispatcher = RequestDispatcher.of(request)
      // Waits for the journal's drain, which runs elsewhere, and one round trip.
      dispatcher.answer(request, "fsyncdir") { reply in
        try await dispatcher.filesystem.synchronizeDirectory(UInt64(inode))
        reply.replyError(0)
      }
    }
    operations.opendir = opendir
    operations.readdir = { request, inode, size, offset, info in
      DirectoryReplies.read(
        request, inode: inode, handle: info!.pointee.fh, size: size, offset: offset, plus: false)
    }
    operations.readdirplus = { request, inode, size, offset, info in
      DirectoryReplies.read(
        request, inode: inode, handle: info!.pointee.fh, size: size, offset: offset, plus: true)
    }
    operations.releasedir = { request, _, info in
      if let info { RequestDispatcher.of(request).filesystem.releaseDirectory(info.pointee.fh) }
      fuse_reply_err(request, 0)
    }
    operations.statfs = statfs
    MetadataOperations.register(in: &operations)
    return operations
  }

  // MARK: - Names and attributes

  private static let lookup:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?) -> Void = {
      request, parent, name in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      switch dispatcher.filesystem.cachedLookUp(parent: UInt64(parent), name: name) {
      case .found(let entry):
        FuseRequest(raw: request!).replyEntry(dispatcher.entryParameters(entry))
        return
      case .missing:
        let reply = FuseRequest(raw: request!)
        if dispatcher.negativeTimeout > 0 {
          reply.replyEntry(dispatcher.negativeEntryParameters())
        } else {
          reply.replyError(ENOENT)
        }
        return
      case nil:
        break
      }
      dispatcher.answer(request, "lookup") { reply in
        let entry: Entry
        do {
          entry = try await dispatcher.filesystem.lookUp(parent: UInt64(parent), name: name)
        } catch  where errnoCode(for: error) == ENOENT && dispatcher.negativeTimeout > 0 {
          // A negative entry (inode 0): the kernel answers ENOENT itself until it expires.
          reply.replyEntry(dispatcher.negativeEntryParameters())
          return
        }
        reply.replyEntry(dispatcher.entryParameters(entry))
      }
    }

  private static let getattr:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
      request, inode, _ in
      let dispatcher = RequestDispatcher.of(request)
      if let cached = dispatcher.filesystem.cachedAttributes(of: UInt64(inode)) {
        FuseRequest(raw: request!).replyAttributes(
          cached, timeout: dispatcher.attributeTimeout(of: inode))
        return
      }
      dispatcher.answer(request, "getattr") { reply in
        let attributes = try await dispatcher.filesystem.attributes(of: UInt64(inode))
        reply.replyAttributes(attributes, timeout: dispatcher.attributeTimeout(of: inode))
      }
    }

  private static let setattr:
    @convention(c) (
      fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<stat>?, Int32,
      UnsafeMutablePointer<fuse_file_info>?
    ) -> Void = { request, inode, attributes, toSet, info in
      let dispatcher = RequestDispatcher.of(request)
      let changes = attributeChanges(attributes!.pointee, toSet: toSet)
      if let unchanged = dispatcher.filesystem.setAttributesLocally(
        of: UInt64(inode), changes: changes)
      {
        FuseRequest(raw: request!).replyAttributes(
          unchanged, timeout: dispatcher.attributeTimeout(of: inode))
        return
      }
      let handle = info?.pointee.fh
      dispatcher.answer(request, "setattr") { reply in
        let result = try await dispatcher.filesystem.setAttributes(
          of: UInt64(inode), handle: handle, changes: changes)
        reply.replyAttributes(result, timeout: dispatcher.attributeTimeout(of: inode))
      }
    }

  private static func attributeChanges(_ attributes: stat, toSet: Int32) -> AttributeChanges {
    func isSet(_ flag: Int32) -> Bool { (toSet & flag) != 0 }
    func time(_ value: timespec, now: Int32, set: Int32) -> AttributeChanges.TimeChange? {
      if isSet(now) { return .now }
      guard isSet(set) else { return nil }
      return .set(seconds: Int64(value.tv_sec), nanoseconds: Int32(value.tv_nsec))
    }
    return AttributeChanges(
      size: isSet(SANDBOX_FUSE_SET_ATTR_SIZE) ? UInt64(attributes.st_size) : nil,
      mode: isSet(SANDBOX_FUSE_SET_ATTR_MODE) ? UInt32(attributes.st_mode & 0o7777) : nil,
      ownerUID: isSet(SANDBOX_FUSE_SET_ATTR_UID) ? attributes.st_uid : nil,
      ownerGID: isSet(SANDBOX_FUSE_SET_ATTR_GID) ? attributes.st_gid : nil,
      accessTime: time(
        attributes.st_atim, now: SANDBOX_FUSE_SET_ATTR_ATIME_NOW, set: SANDBOX_FUSE_SET_ATTR_ATIME),
      modificationTime: time(
        attributes.st_mtim, now: SANDBOX_FUSE_SET_ATTR_MTIME_NOW, set: SANDBOX_FUSE_SET_ATTR_MTIME))
  }

  private static let mkdir:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?, mode_t) -> Void = {
      request, parent, name, mode in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      dispatcher.answer(request, "mkdir") { reply in
        let entry = try await dispatcher.filesystem.makeDirectory(
          parent: UInt64(parent), name: name, mode: UInt32(mode))
        reply.replyEntry(dispatcher.entryParameters(entry))
      }
    }

  private static let unlink:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?) -> Void = {
      request, parent, name in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      dispatcher.answer(request, "unlink") { reply in
        try await dispatcher.filesystem.removeFile(parent: UInt64(parent), name: name)
        reply.replyError(0)
      }
    }

  private static let rmdir:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?) -> Void = {
      request, parent, name in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      dispatcher.answer(request, "rmdir") { reply in
        try await dispatcher.filesystem.removeDirectory(parent: UInt64(parent), name: name)
        reply.replyError(0)
      }
    }

  private static let rename:
    @convention(c) (
      fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?, fuse_ino_t, UnsafePointer<CChar>?, UInt32
    ) -> Void = { request, parent, name, newParent, newName, flags in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      let newName = String(cString: newName!)
      dispatcher.answer(request, "rename") { reply in
        try await dispatcher.filesystem.rename(
          parent: UInt64(parent), name: name, newParent: UInt64(newParent), newName: newName,
          flags: flags)
        reply.replyError(0)
      }
    }

  private static let statfs: @convention(c) (fuse_req_t?, fuse_ino_t) -> Void = { request, _ in
    let dispatcher = RequestDispatcher.of(request)
    dispatcher.answer(request, "statfs") { reply in
      reply.replyStatistics(try await dispatcher.filesystem.statistics())
    }
  }

  // MARK: - Files

  private static let open:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
      request, inode, info in
      let dispatcher = RequestDispatcher.of(request)
      let original = info!.pointee
      // An open with fresh attributes needs no network (a writer's staging file is local):
      // answered here.
      let local: OpenedFile?
      do {
        local = try dispatcher.filesystem.openLocally(UInt64(inode), flags: original.flags)
      } catch {
        dispatcher.fail(FuseRequest(raw: request!), error, "open")
        return
      }
      if let local {
        FuseRequest(raw: request!).replyOpen(openReply(original, local))
        return
      }
      dispatcher.answer(request, "open") { reply in
        let opened = try await dispatcher.filesystem.open(UInt64(inode), flags: original.flags)
        reply.replyOpen(openReply(original, opened))
      }
    }

  private static func openReply(_ original: fuse_file_info, _ opened: OpenedFile) -> fuse_file_info
  {
    var file = original
    file.fh = opened.handle
    sandbox_fuse_file_info_set_keep_cache(&file, opened.keepCache ? 1 : 0)
    // A reader's flush has nothing to send: the kernel skips it, one round trip less per close
    // (rsync's second open of each file, grep's and cat's every file).
    sandbox_fuse_file_info_set_noflush(&file, original.flags & O_ACCMODE == O_RDONLY ? 1 : 0)
    return file
  }

  private static let create:
    @convention(c) (
      fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?, mode_t, UnsafeMutablePointer<fuse_file_info>?
    ) -> Void = { request, parent, name, mode, info in
      let dispatcher = RequestDispatcher.of(request)
      let name = String(cString: name!)
      let original = info!.pointee
      dispatcher.answer(request, "create") { reply in
        var file = original
        let (entry, opened) = try await dispatcher.filesystem.create(
          parent: UInt64(parent), name: name, mode: UInt32(mode), flags: file.flags)
        file.fh = opened.handle
        reply.replyCreate(dispatcher.entryParameters(entry), file: file)
      }
    }

  private static let read:
    @convention(c) (fuse_req_t?, fuse_ino_t, Int, off_t, UnsafeMutablePointer<fuse_file_info>?) ->
      Void = { request, _, size, offset, info in
        let dispatcher = RequestDispatcher.of(request)
        let handle = info!.pointee.fh
        // Staged content is a local pread: answered here, without a task.
        let staged: [UInt8]?
        do {
          staged = try dispatcher.filesystem.readLocally(
            handle: handle, offset: UInt64(offset), length: size)
        } catch {
          dispatcher.fail(FuseRequest(raw: request!), error, "read")
          return
        }
        if let staged {
          FuseRequest(raw: request!).replyBytes(staged)
          return
        }
        // Readahead and large direct reads move up to a MiB each; random reads are small.
        let weight: RequestDispatcher.Weight = size <= 64 * 1024 ? .light : .heavy
        dispatcher.answer(request, "read", weight: weight) { reply in
          reply.replyBytes(
            try await dispatcher.filesystem.read(
              handle: handle, offset: UInt64(offset), length: size))
        }
      }

  private static let write:
    @convention(c) (
      fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?, Int, off_t,
      UnsafeMutablePointer<fuse_file_info>?
    ) -> Void = { request, _, bytes, size, offset, info in
      let dispatcher = RequestDispatcher.of(request)
      let handle = info!.pointee.fh
      // A local pwrite straight from libfuse's buffer: no copy, no task.
      dispatcher.answerNow(request, "write") { reply in
        let written = try dispatcher.filesystem.write(
          handle: handle, bytes: UnsafeRawBufferPointer(start: bytes, count: size),
          offset: UInt64(offset))
        reply.replyWrite(written)
      }
    }

  private static let flush:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
      request, _, info in
      let dispatcher = RequestDispatcher.of(request)
      let handle = info!.pointee.fh
      if dispatcher.filesystem.flushLocally(handle: handle) {
        fuse_reply_err(request, 0)
        return
      }
      let weight: RequestDispatcher.Weight =
        dispatcher.filesystem.uploadIsSmall(handle: handle) ? .light : .heavy
      dispatcher.answer(request, "flush", weight: weight) { reply in
        try await dispatcher.filesystem.flush(handle: handle)
        reply.replyError(0)
      }
    }

  private static let fsync:
    @convention(c) (fuse_req_t?, fuse_ino_t, Int32, UnsafeMutablePointer<fuse_file_info>?) -> Void =
      { request, _, dataOnly, info in
        let dispatcher = RequestDispatcher.of(request)
        let handle = info!.pointee.fh
        let weight: RequestDispatcher.Weight =
          dispatcher.filesystem.uploadIsSmall(handle: handle) ? .light : .heavy
        dispatcher.answer(request, "fsync", weight: weight) { reply in
          try await dispatcher.filesystem.fsync(handle: handle, dataOnly: dataOnly != 0)
          reply.replyError(0)
        }
      }

  private static let release:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
      request, _, info in
      let dispatcher = RequestDispatcher.of(request)
      let handle = info!.pointee.fh
      if dispatcher.filesystem.releaseLocally(handle: handle) {
        fuse_reply_err(request, 0)
        return
      }
      dispatcher.answer(request, "release", weight: .heavy) { reply in
        try await dispatcher.filesystem.release(handle: handle)
        reply.replyError(0)
      }
    }

  private static let opendir:
    @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
      request, inode, info in
      let dispatcher = RequestDispatcher.of(request)
      var file = info!.pointee
      dispatcher.answerNow(request, "opendir") { reply in
        let opened = try dispatcher.filesystem.openDirectory(UInt64(inode))
        file.fh = opened.handle
        // The kernel keeps listings it read while ours stay the same: a repeated `ls -lR` within
        // the attribute timeout costs no READDIR at all.
        sandbox_fuse_file_info_set_cache_readdir(&file, opened.cacheListing ? 1 : 0)
        sandbox_fuse_file_info_set_keep_cache(&file, opened.keepCache ? 1 : 0)
        reply.replyOpen(file)
      }
    }
}
