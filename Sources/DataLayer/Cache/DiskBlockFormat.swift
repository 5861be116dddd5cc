/// The on-disk form of one cached block: a header naming the block and checking its bytes,
/// then the bytes.
///
///     magic "SMBLK001" | identity length (u32 LE) | data length (u32 LE) | checksum (u64 LE)
///     | identity (UTF-8) | data
///
/// The identity names the remote (namespace), block size, path, version and index; it is
/// compared on every read, so a hash collision in the file name is a miss, never wrong data.
enum DiskBlockFormat {
  static let magic: [UInt8] = Array("SMBLK001".utf8)
  static let headerSize = 24

  /// Everything that makes a block's bytes what they are. NUL separates the parts: paths never
  /// hold one.
  static func identity(of key: BlockKey, namespace: String, blockSize: Int) -> String {
    let time = key.version.modificationTime
    return
      "\(namespace)\0\(blockSize)\0\(key.path)\0\(key.version.size)\0\(time.seconds).\(time.nanoseconds)\0\(key.index)"
  }

  /// A file name for `identity`: 128 bits of two FNV-1a hashes, in hex.
  static func fileName(for identity: String) -> String {
    var first: UInt64 = 0xcbf2_9ce4_8422_2325
    var second: UInt64 = 0x84222325_cbf29ce4
    for byte in identity.utf8 {
      first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
      second = (second ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
      second = (second << 7) | (second >> 57)
    }
    return hex(mix(first)) + hex(mix(second)) + ".block"
  }

  /// MurmurHash3's finalizer: spreads FNV's similar outputs for similar keys.
  private static func mix(_ value: UInt64) -> UInt64 {
    var value = value
    value ^= value >> 33
    value = value &* 0xff51_afd7_ed55_8ccd
    value ^= value >> 33
    value = value &* 0xc4ce_b9fe_1a85_ec53
    value ^= value >> 33
    return value
  }

  /// Header and identity for a block holding `data`.
  static func header(identity: String, data: UnsafeRawBufferPointer) -> [UInt8] {
    let name = Array(identity.utf8)
    var header = magic
    header.reserveCapacity(headerSize + name.count)
    append(UInt32(name.count), to: &header)
    append(UInt32(data.count), to: &header)
    append(BlockChecksum.of(data), to: &header)
    header += name
    return header
  }

  struct Header {
    var identityLength: Int
    var dataLength: Int
    var checksum: UInt64
  }

  /// The fixed part of a header, or nil if it is not one.
  static func parseHeader(_ bytes: [UInt8]) -> Header? {
    guard bytes.count == headerSize, Array(bytes[0..<8]) == magic else { return nil }
    return Header(
      identityLength: Int(read(UInt32.self, bytes, at: 8)),
      dataLength: Int(read(UInt32.self, bytes, at: 12)),
      checksum: read(UInt64.self, bytes, at: 16))
  }

  private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
  }

  private static func read<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], at offset: Int)
    -> T
  {
    bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
  }

  private static func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
  }
}

/// A fast 64-bit checksum of a block (four independent lanes in the manner of xxHash64), to
/// catch a damaged or half-written cache file. Not cryptographic.
enum BlockChecksum {
  private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
  private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F

  static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var lane0 = prime1 &+ prime2
    var lane1 = prime2
    var lane2: UInt64 = 0
    var lane3 = 0 &- prime1
    let count = bytes.count
    var offset = 0
    while offset + 32 <= count {
      lane0 = round(lane0, bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
      lane1 = round(lane1, bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
      lane2 = round(lane2, bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
      lane3 = round(lane3, bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
      offset += 32
    }
    var hash =
      rotate(lane0, 1) &+ rotate(lane1, 7) &+ rotate(lane2, 12) &+ rotate(lane3, 18)
      &+ UInt64(count)
    while offset < count {
      hash = rotate((hash ^ UInt64(bytes[offset])) &* prime1, 11)
      offset += 1
    }
    hash ^= hash >> 33
    hash = hash &* prime2
    hash ^= hash >> 29
    return hash
  }

  private static func round(_ lane: UInt64, _ input: UInt64) -> UInt64 {
    rotate(lane &+ input &* prime2, 31) &* prime1
  }

  private static func rotate(_ value: UInt64, _ bits: UInt64) -> UInt64 {
    (value << bits) | (value >> (64 - bits))
  }
}
