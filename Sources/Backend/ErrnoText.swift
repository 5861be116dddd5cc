#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The errno named by an error message's text, for sandbox APIs that give text, not numbers
/// (Go's errno strings in envd's answers, coreutils' messages from a command).
public enum ErrnoText {
  /// Order matters: "is not a directory" must not be read as "is a directory".
  public static func errno(describedBy message: String) -> Int32? {
    let text = message.lowercased()
    for (phrase, number) in phrases where text.contains(phrase) { return number }
    return nil
  }

  private static let phrases: [(String, Int32)] = [
    ("no such file or directory", ENOENT),
    ("does not exist", ENOENT),
    ("not a directory", ENOTDIR),
    ("path is a file", ENOTDIR),  // envd's EnsureDirs: a parent component is a file
    ("is a directory", EISDIR),
    ("directory not empty", ENOTEMPTY),
    ("file exists", EEXIST),
    ("permission denied", EACCES),
    ("operation not permitted", EPERM),
    ("read-only file system", EROFS),
    ("no space left on device", ENOSPC),
    ("not enough disk space", ENOSPC),
    ("not enough inodes", ENOSPC),
    ("disk quota exceeded", EDQUOT),
    ("invalid cross-device link", EXDEV),
    ("too many levels of symbolic links", ELOOP),
    ("cyclic symlink", ELOOP),
    ("file name too long", ENAMETOOLONG),
    ("invalid argument", EINVAL),
  ]

}
