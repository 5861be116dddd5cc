import CFuse
import Glibc

/// A FUSE request that is answered later, from whichever thread finishes the work. libfuse's
/// `fuse_reply_*` functions are thread-safe; each request must be answered exactly once.
struct FuseRequest: @unchecked Sendable {
  let raw: fuse_req_t

  func replyError(_ code: Int32) {
    fuse_reply_err(raw, code)
  }

  func replyNone() {
    fuse_reply_none(raw)
  }

  func replyEntry(_ parameters: fuse_entry_param) {
    var parameters = parameters
    fuse_reply_entry(raw, &parameters)
  }

  func replyCreate(_ parameters: fuse_entry_param, file: fuse_file_info) {
    var parameters = parameters
    var file = file
    fuse_reply_create(raw, &parameters, &file)
  }

  func replyAttributes(_ attributes: Glibc.stat, timeout: Double) {
    var attributes = attributes
    fuse_reply_attr(raw, &attributes, timeout)
  }

  func replyOpen(_ file: fuse_file_info) {
    var file = file
    fuse_reply_open(raw, &file)
  }

  func replyWrite(_ count: Int) {
    fuse_reply_write(raw, count)
  }

  func replyBytes(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
      _ = fuse_reply_buf(raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
    }
  }

  /// A slice of a cached buffer, replied without copying it first.
  func replyBytes(_ bytes: ArraySlice<UInt8>) {
    bytes.withUnsafeBytes { buffer in
      _ = fuse_reply_buf(raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
    }
  }

  func replyBuffer(_ buffer: UnsafeRawBufferPointer) {
    fuse_reply_buf(raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
  }

  func replyStatistics(_ statistics: statvfs) {
    var statistics = statistics
    fuse_reply_statfs(raw, &statistics)
  }
}
