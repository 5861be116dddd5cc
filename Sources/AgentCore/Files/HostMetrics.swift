import Foundation
import Glibc
import Synchronization

/// `GET /metrics`: envd's `host.GetMetrics`, with disk numbers from `statvfs` of the served root.
struct HostMetrics: Encodable, Sendable {
  var ts: Int
  var cpu_count: Int
  var cpu_used_pct: Double
  var mem_total: UInt64
  var mem_used: UInt64
  var mem_cache: UInt64
  var mem_total_mib: UInt64
  var mem_used_mib: UInt64
  var disk_used: UInt64
  var disk_total: UInt64
}

/// Samples /proc and the root's file system. CPU use is measured since the previous call, as
/// gopsutil's `cpu.Percent(0, …)` does.
final class HostMetricsSampler: Sendable {
  private let previousCPU = Mutex<(busy: UInt64, total: UInt64)>((0, 0))

  func sample(root: String) -> HostMetrics {
    let memory = Self.meminfo()
    let total = memory["MemTotal"] ?? 0
    let cached = memory["Cached"] ?? 0
    let used = total &- (memory["MemFree"] ?? 0) &- (memory["Buffers"] ?? 0) &- cached
    var disk = statvfs()
    var diskTotal: UInt64 = 0
    var diskAvailable: UInt64 = 0
    if statvfs(root, &disk) == 0 {
      diskTotal = UInt64(disk.f_blocks) * UInt64(disk.f_frsize)
      diskAvailable = UInt64(disk.f_bavail) * UInt64(disk.f_frsize)
    }
    return HostMetrics(
      ts: Int(Date().timeIntervalSince1970),
      cpu_count: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
      cpu_used_pct: cpuPercent(),
      mem_total: total, mem_used: used, mem_cache: cached,
      mem_total_mib: total / 1024 / 1024, mem_used_mib: used / 1024 / 1024,
      disk_used: diskTotal - diskAvailable, disk_total: diskTotal)
  }

  /// Busy share of all CPU time since the last call, rounded to two decimals.
  private func cpuPercent() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
      let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
    else { return 0 }
    let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
    guard fields.count >= 4 else { return 0 }
    let total = fields.prefix(8).reduce(0, +)  // user…steal; guest time is already in user.
    let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
    let busy = total - idle
    let previous = previousCPU.withLock { value in
      defer { value = (busy, total) }
      return value
    }
    guard total > previous.total else { return 0 }
    let percent = Double(busy &- previous.busy) / Double(total - previous.total) * 100
    return (max(0, min(100, percent)) * 100).rounded() / 100
  }

  /// /proc/meminfo in bytes.
  private static func meminfo() -> [String: UInt64] {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else {
      return [:]
    }
    var values: [String: UInt64] = [:]
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: " ", omittingEmptySubsequences: true)
      guard parts.count >= 2, let value = UInt64(parts[1]) else { continue }
      values[String(parts[0].dropLast())] = value * (parts.count > 2 ? 1024 : 1)
    }
    return values
  }
}
