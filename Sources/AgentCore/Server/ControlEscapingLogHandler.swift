import Logging

/// Escapes control characters (NUL, CR, LF, ESC…) in every message and metadata value before
/// the wrapped handler writes it: a request's path or command must not cut, forge or colour a
/// log line.
public struct ControlEscapingLogHandler: LogHandler {
  public var wrapped: any LogHandler

  public init(wrapping handler: any LogHandler) {
    wrapped = handler
  }

  public func log(event: LogEvent) {
    var event = event
    let text = event.message.description
    let escaped = text.escapingControlCharacters
    if escaped != text { event.message = Logger.Message(stringLiteral: escaped) }
    event.metadata = event.metadata.map { $0.mapValues(Self.escape) }
    wrapped.log(event: event)
  }

  static func escape(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
    switch value {
    case .string(let text): .string(text.escapingControlCharacters)
    case .stringConvertible(let convertible):
      .string(convertible.description.escapingControlCharacters)
    case .dictionary(let entries): .dictionary(entries.mapValues(escape))
    case .array(let items): .array(items.map(escape))
    }
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { wrapped[metadataKey: key] }
    set { wrapped[metadataKey: key] = newValue }
  }

  public var metadata: Logger.Metadata {
    get { wrapped.metadata }
    set { wrapped.metadata = newValue }
  }

  public var logLevel: Logger.Level {
    get { wrapped.logLevel }
    set { wrapped.logLevel = newValue }
  }

  public var metadataProvider: Logger.MetadataProvider? {
    get { wrapped.metadataProvider }
    set { wrapped.metadataProvider = newValue }
  }
}

extension Logger {
  /// This logger, its lines escaped by `ControlEscapingLogHandler`.
  public var escapingControlCharacters: Logger {
    guard !(handler is ControlEscapingLogHandler) else { return self }
    var logger = self
    logger.handler = ControlEscapingLogHandler(wrapping: handler)
    return logger
  }
}
