import ArgumentParser
import Foundation

/// mount(8), mount.fuse3 and /etc/fstab pass everything as `-o name=value,flag,…`. Each of our
/// long options has that form too: `-o token_file=F` is `--token-file F`, `-o read_only` is
/// `--read-only`. The rest stays `-o`, for MountOptions and libfuse (allow_other, ro, uid=, …);
/// options meant for mount(8) and systemd alone are dropped.
enum MountHelperArguments {
  /// The command line with every `-o` item we know as an option or flag of our own spelled as one.
  static func expand(_ arguments: [String]) throws -> [String] {
    var expanded: [String] = []
    var index = arguments.startIndex
    while index < arguments.endIndex {
      let argument = arguments[index]
      let list: String
      if argument == "-o", index + 1 < arguments.endIndex {
        list = arguments[index + 1]
        index += 2
      } else if argument.hasPrefix("-o"), argument.count > 2, !argument.hasPrefix("--") {
        list = String(argument.dropFirst(2))
        index += 1
      } else {
        expanded.append(argument)
        index += 1
        continue
      }
      var kept: [String] = []
      for item in list.split(separator: ",").map(String.init) {
        kept += try translate(item, into: &expanded)
      }
      if !kept.isEmpty { expanded += ["-o", kept.joined(separator: ",")] }
    }
    return expanded
  }

  /// Appends `item` as our own option to `arguments`, or returns it to keep as `-o`.
  private static func translate(_ item: String, into arguments: inout [String]) throws
    -> [String]
  {
    let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
    guard let name = parts.first else { return [] }
    let value = parts.count > 1 ? parts[1] : nil
    if isForMountAlone(name, hasValue: value != nil) { return [] }
    let long = name.replacingOccurrences(of: "_", with: "-")
    switch longNames[long] {
    case .option?:
      guard let value, !value.isEmpty else {
        throw MountFailure("option '\(item)' needs a value: \(name)=…")
      }
      arguments += ["--" + long, value]
      return []
    case .flag?:
      guard value == nil else { throw MountFailure("option '\(item)' takes no value: \(name)") }
      arguments.append("--" + long)
      return []
    case nil:
      return [item]
    }
  }

  /// What mount(8), fstab and systemd mean for themselves. `user` without a value lets users
  /// mount; `user=NAME` is our `--user`.
  private static func isForMountAlone(_ name: String, hasValue: Bool) -> Bool {
    let plain = ["defaults", "rw", "auto", "noauto", "nouser", "users", "_netdev", "nofail"]
    return plain.contains(name) || (name == "user" && !hasValue) || name.hasPrefix("x-")
      || name.hasPrefix("X-") || name == "comment"
  }

  private enum Kind { case option, flag }

  /// Our long options and flags by name, from the parser's own description of MountCommand.
  private static let longNames: [String: Kind] = {
    guard let data = MountCommand._dumpHelp().data(using: .utf8),
      let tool = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let command = tool["command"] as? [String: Any],
      let arguments = command["arguments"] as? [[String: Any]]
    else { return [:] }
    var names: [String: Kind] = [:]
    for argument in arguments {
      let kind: Kind
      switch argument["kind"] as? String {
      case "option": kind = .option
      case "flag": kind = .flag
      default: continue
      }
      for name in argument["names"] as? [[String: Any]] ?? []
      where name["kind"] as? String == "long" {
        if let text = name["name"] as? String, text != "help" { names[text] = kind }
      }
    }
    return names
  }()
}
