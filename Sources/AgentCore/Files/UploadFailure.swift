/// An upload error with envd's status and message.
struct UploadFailure: Error {
  var status: Int
  var message: String

  init(_ status: Int, _ message: String) {
    self.status = status
    self.message = message
  }

  var httpError: EnvdHTTPError { EnvdHTTPError(status: status, message) }
}
