import Glibc

/// Go's `fs.FileMode.String()` for a `stat` mode, e.g. `-rw-r--r--`, `drwxr-xr-x`,
/// `Lrwxrwxrwx`, `urwxr-xr-x`, `dtrwxrwxrwx`, `Dcrw-rw-rw-`: clients decode file types from it.
enum GoFileMode {
  static func string(_ mode: mode_t) -> String {
    var text = ""
    // Letters in Go's bit order: d a l T L D p S u g c t ?
    let type = mode & S_IFMT
    if type == S_IFDIR { text += "d" }
    if type == S_IFLNK { text += "L" }
    if type == S_IFBLK || type == S_IFCHR { text += "D" }
    if type == S_IFIFO { text += "p" }
    if type == S_IFSOCK { text += "S" }
    if mode & S_ISUID != 0 { text += "u" }
    if mode & S_ISGID != 0 { text += "g" }
    if type == S_IFCHR { text += "c" }
    if mode & S_ISVTX != 0 { text += "t" }
    if text.isEmpty { text = "-" }
    let letters = Array("rwxrwxrwx")
    for bit in 0..<9 {
      text.append(mode & (1 << (8 - mode_t(bit))) != 0 ? letters[bit] : "-")
    }
    return text
  }
}
