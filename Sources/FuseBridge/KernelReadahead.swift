import Foundation
import Logging

/// The kernel's readahead for one mount, in /sys/class/bdi/MAJ:MIN/read_ahead_kb.
///
/// FUSE mounts start at 128 KiB, so a sequential reader sends one 128 KiB request at a time. A
/// 1 MiB window lets the kernel send 1 MiB reads (our max_pages) with several in flight: about 4×
/// the throughput on loopback. Only root may write it; others keep the default. Written right
/// after the mount and before FUSE_INIT is answered, whose reply then asks for the same window.
enum KernelReadahead {
  static func set(kibibytes: Int, mountpoint: String, logger: Logger) {
    guard let device = deviceNumber(of: mountpoint) else {
      logger.debug("readahead: \(mountpoint) not found in /proc/self/mountinfo")
      return
    }
    let file = "/sys/class/bdi/\(device)/read_ahead_kb"
    do {
      try "\(kibibytes)\n".write(toFile: file, atomically: false, encoding: .utf8)
      logger.debug("readahead of \(mountpoint) set to \(kibibytes) KiB")
    } catch {
      logger.debug("readahead of \(mountpoint) left at the kernel's default: \(error)")
    }
  }

  /// `MAJ:MIN` of the mount at `mountpoint`, read without touching the mount itself (a stat
  /// would be a FUSE request that nothing is serving yet).
  private static func deviceNumber(of mountpoint: String) -> String? {
    guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else {
      return nil
    }
    // Fields: id, parent id, MAJ:MIN, root, mount point, … (the last match is the top mount).
    var device: String?
    for line in table.split(separator: "\n") {
      let fields = line.split(separator: " ")
      if fields.count > 4 && fields[4] == mountpoint { device = String(fields[2]) }
    }
    return device
  }
}
