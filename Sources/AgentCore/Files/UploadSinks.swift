import Logging
import MultipartKit
import NIOCore

/// Consumes a `POST /files` body chunk by chunk on the thread pool: gzip decoding, multipart
/// parsing and disk writes all happen there, so memory stays at about one chunk.
protocol UploadSink: AnyObject, Sendable {
  func consume(_ chunks: [ByteBuffer]) throws(UploadFailure)
  /// Called once the body ended; returns envd's answer entries.
  func finish() throws(UploadFailure) -> [UploadEntry]
}

/// Shared gzip front end: decodes when the request said `Content-Encoding: gzip`.
struct BodyDecoder {
  let gzip: GzipDecompressor?

  func decode(_ chunks: [ByteBuffer], into emit: (ByteBuffer) throws(UploadFailure) -> Void)
    throws(UploadFailure)
  {
    for chunk in chunks {
      guard let gzip else {
        try emit(chunk)
        continue
      }
      do {
        try gzip.decompress(chunk) { piece in try emit(piece) }
      } catch let failure as UploadFailure {
        throw failure
      } catch {
        throw UploadFailure(500, "error writing file: \(error)")
      }
    }
  }

  func finish() throws(UploadFailure) {
    do {
      try gzip?.finish()
    } catch {
      throw UploadFailure(500, "error writing file: \(error)")
    }
  }
}

/// `application/octet-stream`: the body is the file.
final class RawUploadSink: UploadSink, @unchecked Sendable {
  private let target: UploadTarget
  private let decoder: BodyDecoder

  init(target: UploadTarget, decoder: BodyDecoder) {
    self.target = target
    self.decoder = decoder
  }

  func consume(_ chunks: [ByteBuffer]) throws(UploadFailure) {
    try decoder.decode(chunks) { piece throws(UploadFailure) in try target.write(piece) }
  }

  func finish() throws(UploadFailure) -> [UploadEntry] {
    try decoder.finish()
    return [try target.finish()]
  }
}

/// `multipart/*`: every part named `file` goes to `?path=` or to its filename taken as a path.
final class MultipartUploadSink: UploadSink, @unchecked Sendable {
  private enum Event {
    case header(String, String)
    case body(ByteBuffer)
    case partComplete
  }

  private enum Part {
    case none
    case headers([(String, String)])
    case skipping
    case writing(UploadTarget)
  }

  private let parser: MultipartParser
  private let decoder: BodyDecoder
  private let queryPath: String?
  private let user: AgentUser
  private let jail: RootJail
  private let declaredLength: Int?
  private let metadata: UploadMetadata
  private let logger: Logger
  private var events: [Event] = []
  private var part = Part.none
  private var entries: [UploadEntry] = []
  private var sawAnyPart = false

  init(
    boundary: String, queryPath: String?, user: AgentUser, jail: RootJail, declaredLength: Int?,
    decoder: BodyDecoder, metadata: UploadMetadata, logger: Logger
  ) {
    self.parser = MultipartParser(boundary: boundary)
    self.queryPath = queryPath
    self.user = user
    self.jail = jail
    self.declaredLength = declaredLength
    self.metadata = metadata
    self.logger = logger
    self.decoder = decoder
    parser.onHeader = { [unowned self] name, value in events.append(.header(name, value)) }
    parser.onBody = { [unowned self] body in events.append(.body(body)) }
    parser.onPartComplete = { [unowned self] in events.append(.partComplete) }
  }

  func consume(_ chunks: [ByteBuffer]) throws(UploadFailure) {
    try decoder.decode(chunks) { piece throws(UploadFailure) in
      do {
        try parser.execute(piece)
      } catch {
        throw UploadFailure(400, "error reading form: multipart: malformed body")
      }
      let pending = events
      events.removeAll(keepingCapacity: true)
      for event in pending { try handle(event) }
    }
  }

  func finish() throws(UploadFailure) -> [UploadEntry] {
    try decoder.finish()
    switch part {
    case .writing, .skipping: throw UploadFailure(400, "error writing file: unexpected EOF")
    case .headers: throw UploadFailure(400, "error reading form: multipart: NextPart: EOF")
    case .none:
      if !sawAnyPart { throw UploadFailure(400, "error reading form: multipart: NextPart: EOF") }
    }
    return entries
  }

  private func handle(_ event: Event) throws(UploadFailure) {
    switch event {
    case .header(let name, let value):
      sawAnyPart = true
      if case .headers(let list) = part {
        part = .headers(list + [(name, value)])
      } else {
        part = .headers([(name, value)])
      }
    case .body(let body):
      if case .headers(let list) = part { part = try begin(headers: list) }
      if case .none = part { part = try begin(headers: []) }
      if case .writing(let target) = part { try target.write(body) }
    case .partComplete:
      sawAnyPart = true
      if case .headers(let list) = part { part = try begin(headers: list) }
      if case .writing(let target) = part { entries.append(try target.finish()) }
      part = .none
    }
  }

  /// envd's `handlePart`: skip other form names, resolve the path, refuse duplicates, open.
  private func begin(headers: [(String, String)]) throws(UploadFailure) -> Part {
    let disposition = headers.first { $0.0.lowercased() == "content-disposition" }
      .map { HeaderParameters($0.1) }
    guard disposition?["name"] == "file" else { return .skipping }
    let rawPath: String
    if let queryPath {
      rawPath = queryPath
    } else if let filename = disposition?["filename"], !filename.isEmpty {
      rawPath = filename
    } else {
      throw UploadFailure(
        400, "error resolving path: error getting multipart custom part file name: no filename")
    }
    let path: ProtocolPath
    do {
      path = try ProtocolPath.expand(rawPath, user: user)
    } catch {
      throw UploadFailure(400, "error resolving path: \(error.message)")
    }
    if entries.contains(where: { $0.path == path.requested }) {
      throw UploadFailure(
        400,
        "you cannot upload multiple files to the same path '\(path.requested)' in one upload request, only the first specified file was uploaded"
      )
    }
    return .writing(
      try UploadTarget(
        path: path, user: user, jail: jail, declaredLength: declaredLength, metadata: metadata,
        logger: logger))
  }
}
