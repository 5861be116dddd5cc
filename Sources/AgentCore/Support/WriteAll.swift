import Glibc

extension FileDescriptor {
  /// Writes all of `bytes`, with `pwrite` from `offset` when one is given, else `write`; an
  /// interrupted call is retried. Returns how many bytes were written and the errno that stopped
  /// it (0 when all were), so a caller can count a partial write before reporting the failure.
  func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int64? = nil) -> (
    written: Int, failure: Int32
  ) {
    var done = 0
    while done < bytes.count {
      let start = bytes.baseAddress! + done
      let result =
        if let offset {
          pwrite(raw, start, bytes.count - done, off_t(offset + Int64(done)))
        } else {
          Glibc.write(raw, start, bytes.count - done)
        }
      if result < 0 {
        if errno == EINTR { continue }
        return (done, errno)
      }
      done += result
    }
    return (done, 0)
  }
}
