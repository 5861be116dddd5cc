import GRPCCore
import GRPCProtobuf
import Glibc

/// CoreWeave's AIP-193 reasons (the SDK's `_error_info.py`), trusted only under this domain.
enum CoreWeaveReason: String, Sendable {
  case fileNotFound = "CWSANDBOX_FILE_NOT_FOUND"
  case fileIsDirectory = "CWSANDBOX_FILE_IS_DIRECTORY"
  case fileIOFailed = "CWSANDBOX_FILE_IO_FAILED"
  case filePermissionDenied = "CWSANDBOX_FILE_PERMISSION_DENIED"
  case fileTooLarge = "CWSANDBOX_FILE_TOO_LARGE"
  case sandboxNotFound = "CWSANDBOX_SANDBOX_NOT_FOUND"

  static let domain = "cwsandbox.com"
}

/// A failed call: a gRPC status whose `grpc-status-details-bin` trailer is a `google.rpc.Status`
/// holding one `ErrorInfo` (when there is a reason). A bare NOT_FOUND would read as "no such
/// sandbox" to the SDK, so file errors always carry their reason.
struct CoreWeaveError: Error, RPCErrorConvertible {
  var code: RPCError.Code
  var reason: CoreWeaveReason?
  var message: String
  var metadata: [String: String]

  init(
    _ code: RPCError.Code, _ reason: CoreWeaveReason?, _ message: String,
    metadata: [String: String] = [:]
  ) {
    self.code = code
    self.reason = reason
    self.message = message
    self.metadata = metadata
  }

  var status: GoogleRPCStatus {
    GoogleRPCStatus(
      code: code, message: message,
      details: reason.map {
        [
          .errorInfo(
            .init(reason: $0.rawValue, domain: CoreWeaveReason.domain, metadata: metadata))
        ]
      } ?? [])
  }

  var rpcErrorCode: RPCError.Code { code }
  var rpcErrorMessage: String { message }
  var rpcErrorMetadata: Metadata { reason == nil ? [:] : status.rpcErrorMetadata }

  /// A failed system call on `path`, by errno.
  static func file(_ error: SystemError, path: String) -> CoreWeaveError {
    let metadata = ["filepath": path]
    switch error.code {
    case ENOENT, ENOTDIR:
      return CoreWeaveError(.notFound, .fileNotFound, "\(error)", metadata: metadata)
    case EISDIR:
      return CoreWeaveError(
        .failedPrecondition, .fileIsDirectory, "\(path) is a directory", metadata: metadata)
    case EACCES, EPERM, EROFS:
      return CoreWeaveError(
        .permissionDenied, .filePermissionDenied, "\(error)", metadata: metadata)
    default:
      return CoreWeaveError(.internalError, .fileIOFailed, "\(error)", metadata: metadata)
    }
  }
}
