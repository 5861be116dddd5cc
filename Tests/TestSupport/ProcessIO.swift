import Foundation

/// A counter from `/proc/PID/io` (`syscw`, `cancelled_write_bytes`, …); nil if it is missing.
public func processIOCounter(_ name: String, of pid: Int32) throws -> Int? {
  let io = try String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)
  let line = io.split(separator: "\n").first { $0.hasPrefix(name + ":") }
  return line.flatMap { Int($0.split(separator: " ").last ?? "") }
}
