#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The local file of an upload, open for reading, and its size; nil (an empty file): -1 and 0.
/// The caller closes the descriptor.
public func openUploadSource(_ localPath: String?, context: String) throws -> (
  descriptor: Int32, size: Int64
) {
  guard let localPath else { return (-1, 0) }
  let descriptor = open(localPath, O_RDONLY | O_CLOEXEC)
  var info = stat()
  guard descriptor >= 0, fstat(descriptor, &info) == 0 else {
    let failure = errno
    if descriptor >= 0 { close(descriptor) }
    throw LocalError(errno: failure, "open for \(context)", localPath)
  }
  return (descriptor, Int64(info.st_size))
}
