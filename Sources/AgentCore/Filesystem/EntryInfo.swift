import Glibc

/// `filesystem.EntryInfo` as envd emits it in protojson: lowerCamelCase, int64 as strings,
/// zero values left out.
public struct EntryInfo: Sendable, Equatable, Encodable {
  public enum FileType: String, Sendable, Encodable {
    case file = "FILE_TYPE_FILE"
    case directory = "FILE_TYPE_DIRECTORY"
  }

  public var name: String
  public var type: FileType?
  public var path: String
  public var size: Int64
  public var mode: UInt32
  public var permissions: String
  public var owner: String
  public var group: String
  public var modifiedTime: String?
  public var symlinkTarget: String?
  /// `user.e2b.*` xattrs, prefix stripped (field 11, envd ≥ 0.6.2).
  public var metadata: [String: String] = [:]
  /// The entry itself is a symlink; `type` and `mode` describe its target (field 12).
  public var isSymlink = false

  enum CodingKeys: String, CodingKey {
    case name, type, path, size, mode, permissions, owner, group, modifiedTime, symlinkTarget
    case metadata, isSymlink
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    if !name.isEmpty { try container.encode(name, forKey: .name) }
    try container.encodeIfPresent(type, forKey: .type)
    if !path.isEmpty { try container.encode(path, forKey: .path) }
    if size != 0 { try container.encode(String(size), forKey: .size) }
    if mode != 0 { try container.encode(mode, forKey: .mode) }
    if !permissions.isEmpty { try container.encode(permissions, forKey: .permissions) }
    if !owner.isEmpty { try container.encode(owner, forKey: .owner) }
    if !group.isEmpty { try container.encode(group, forKey: .group) }
    try container.encodeIfPresent(modifiedTime, forKey: .modifiedTime)
    // An optional proto3 field: present whenever set, even if empty.
    try container.encodeIfPresent(symlinkTarget, forKey: .symlinkTarget)
    if !metadata.isEmpty { try container.encode(metadata, forKey: .metadata) }
    if isSymlink { try container.encode(true, forKey: .isSymlink) }
  }
}

extension EntryInfo: ProtocolJSONWritable {
  /// The same bytes as `encode(to:)` through `protocolJSONEncoder()`: keys in bytewise order.
  func write(to json: inout ProtocolJSONWriter) {
    var separator = false
    func key(_ name: StaticString, _ json: inout ProtocolJSONWriter) {
      if separator { json.raw(",") }
      separator = true
      json.key(name)
    }
    json.raw("{")
    if !group.isEmpty {
      key("group", &json)
      json.string(group)
    }
    if isSymlink {
      key("isSymlink", &json)
      json.raw("true")
    }
    if !metadata.isEmpty {
      key("metadata", &json)
      json.raw("{")
      for (index, name) in metadata.keys.sorted().enumerated() {
        if index > 0 { json.raw(",") }
        json.string(name)
        json.raw(":")
        json.string(metadata[name]!)
      }
      json.raw("}")
    }
    if mode != 0 {
      key("mode", &json)
      json.number(UInt64(mode))
    }
    if let modifiedTime {
      key("modifiedTime", &json)
      json.string(modifiedTime)
    }
    if !name.isEmpty {
      key("name", &json)
      json.string(name)
    }
    if !owner.isEmpty {
      key("owner", &json)
      json.string(owner)
    }
    if !path.isEmpty {
      key("path", &json)
      json.string(path)
    }
    if !permissions.isEmpty {
      key("permissions", &json)
      json.string(permissions)
    }
    if size != 0 {
      key("size", &json)
      json.quoted(size)
    }
    if let symlinkTarget {
      key("symlinkTarget", &json)
      json.string(symlinkTarget)
    }
    if let type {
      key("type", &json)
      json.string(type.rawValue)
    }
    json.raw("}")
  }
}

/// A name that is not UTF-8 cannot be marshalled by protojson; envd fails the whole call.
public struct InvalidUTF8Name: Error, Sendable {
  public var bytes: [UInt8]
}

extension EntryInfo {
  static func fileType(_ mode: mode_t) -> FileType? {
    switch mode & S_IFMT {
    case S_IFREG: .file
    case S_IFDIR: .directory
    default: nil
    }
  }

  /// envd's `GetEntryFromPath` for `path` whose `lstat` is `info`: for a symlink, `type`/`mode`
  /// and `metadata` describe the target and `symlinkTarget` is the fully resolved protocol path
  /// (its own path when dangling or looping); everything else describes the entry itself.
  /// `directory`, the open folder `path` is in, saves a lookup from the root when given.
  public static func make(
    path: ProtocolPath, lstat info: stat, jail: RootJail, names: OwnerNames,
    in directory: FileDescriptor? = nil
  ) -> EntryInfo {
    var type = fileType(info.st_mode)
    var mode = UInt32(info.st_mode & 0o777)
    var symlinkTarget: String?
    var metadata: [String: String] = [:]
    if info.isSymlink {
      type = nil
      mode = 0
      symlinkTarget = path.requested
      if let target = try? jail.open(path, flags: LinuxFlags.openPath),
        let targetInfo = try? RootJail.fstat(target, operation: "stat", path: path)
      {
        type = fileType(targetInfo.st_mode)
        mode = UInt32(targetInfo.st_mode & 0o777)
        symlinkTarget = jail.protocolPath(of: target) ?? path.requested
        metadata = UserMetadata.read(hostPath: "/proc/self/fd/\(target.raw)", follow: true)
      }
    } else if let directory, !path.isRoot {
      metadata = UserMetadata.read(
        hostPath: "/proc/self/fd/\(directory.raw)/\(path.name)", follow: false)
    } else if let entry = try? jail.open(path, flags: LinuxFlags.openPath | O_NOFOLLOW) {
      metadata = UserMetadata.read(hostPath: "/proc/self/fd/\(entry.raw)", follow: true)
    }
    let mtime = info.st_mtim
    return EntryInfo(
      name: path.isRoot ? "/" : path.name,
      type: type,
      path: path.requested,
      size: Int64(info.st_size),
      mode: mode,
      permissions: GoFileMode.string(info.st_mode),
      owner: names.user(info.st_uid),
      group: names.group(info.st_gid),
      modifiedTime: mtime.tv_sec == 0 && mtime.tv_nsec == 0
        ? nil : ProtoTimestamp.string(seconds: mtime.tv_sec, nanoseconds: mtime.tv_nsec),
      symlinkTarget: symlinkTarget, metadata: metadata, isSymlink: info.isSymlink)
  }
}
