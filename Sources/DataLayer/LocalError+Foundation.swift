import Backend
import Foundation

extension LocalError {
  /// A Foundation file call's error: its POSIX errno when it carries one, else EIO with the
  /// error's own text.
  init(foundation error: any Error, _ operation: String, _ file: String) {
    let cause = ((error as? CocoaError)?.underlying).map { $0 as NSError }
    if let cause, cause.domain == NSPOSIXErrorDomain {
      self.init(errno: Int32(cause.code), operation, file)
    } else {
      self.init(errno: EIO, operation, file, detail: "\(error)")
    }
  }
}
