import Foundation

/// The parts of protobuf's JSON mapping that the streaming messages need (protocol doc §5.4):
/// lowerCamelCase or snake_case keys, numbers as JSON numbers or strings, enums by name or number,
/// `null` as the default value, unknown fields ignored.
enum ProtoJSON {
  static func decode<Message: Decodable>(_ type: Message.Type, from data: Data) throws(ConnectError)
    -> Message
  {
    do {
      return try JSONDecoder().decode(type, from: data)
    } catch let error as ConnectError {
      throw error
    } catch let error as DecodingError {
      throw ConnectError(.invalidArgument, "unmarshal message: \(describe(error))")
    } catch {
      throw ConnectError(.invalidArgument, "unmarshal message: \(error)")
    }
  }

  /// Output keeps `/` unescaped, as Go's protojson does.
  static func encode<Message: Encodable>(_ message: Message) -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    // Every message type here encodes only strings, numbers, bools and nested structs.
    return (try? encoder.encode(message)) ?? Data("{}".utf8)
  }

  private static func describe(_ error: DecodingError) -> String {
    switch error {
    case .dataCorrupted(let context):
      let underlying = (context.underlyingError as NSError?)?.localizedDescription
      return "syntax error: \(underlying ?? context.debugDescription)"
    case .typeMismatch(_, let context), .valueNotFound(_, let context):
      return "\(path(context)): \(context.debugDescription)"
    case .keyNotFound(let key, let context):
      return "\(path(context)): missing \(key.stringValue)"
    @unknown default:
      return "\(error)"
    }
  }

  private static func path(_ context: DecodingError.Context) -> String {
    let names = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
    return names.isEmpty ? "message" : "field " + names.joined(separator: ".")
  }
}

/// A key that matches either spelling protobuf JSON allows.
struct ProtoKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer where Key == ProtoKey {
  /// The first of the given names that is present and not null.
  private func presentKey(_ names: [String]) -> ProtoKey? {
    for name in names {
      let key = ProtoKey(stringValue: name)
      if contains(key), (try? decodeNil(forKey: key)) == false { return key }
    }
    return nil
  }

  func proto<T: Decodable>(_ type: T.Type, _ names: String...) throws -> T? {
    guard let key = presentKey(names) else { return nil }
    return try decode(type, forKey: key)
  }

  /// A 32-bit unsigned integer: a JSON number or a decimal string.
  func protoUInt32(_ names: String...) throws -> UInt32? {
    guard let key = presentKey(names) else { return nil }
    if let number = try? decode(UInt32.self, forKey: key) { return number }
    if let text = try? decode(String.self, forKey: key), let number = UInt32(text) { return number }
    throw DecodingError.typeMismatch(
      UInt32.self,
      .init(codingPath: codingPath + [key], debugDescription: "invalid value for uint32 field"))
  }

  /// An enum given by name, or by number through `numbers`.
  func protoEnum(_ names: [String], numbers: [Int: String]) throws -> String? {
    guard let key = presentKey(names) else { return nil }
    if let name = try? decode(String.self, forKey: key) { return name }
    if let number = try? decode(Int.self, forKey: key) {
      return numbers[number] ?? String(number)
    }
    throw DecodingError.typeMismatch(
      String.self, .init(codingPath: codingPath + [key], debugDescription: "invalid enum value"))
  }
}
