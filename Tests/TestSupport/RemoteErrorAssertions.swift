import Backend
import XCTest

/// Asserts that `body` throws a RemoteError with `errno`; returns it.
@discardableResult
public func assertRemoteError<T>(
  _ errno: Int32, _ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line
) async -> RemoteError? {
  do {
    let value = try await body()
    XCTFail("expected errno \(errno), got \(value)", file: file, line: line)
  } catch let error as RemoteError {
    XCTAssertEqual(error.errno, errno, "\(error)", file: file, line: line)
    return error
  } catch {
    XCTFail("expected RemoteError errno \(errno), got \(error)", file: file, line: line)
  }
  return nil
}

/// Asserts that `body` throws a LocalError (this machine's files) with `errno`; returns it.
@discardableResult
public func assertLocalError<T>(
  _ errno: Int32, _ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line
) async -> LocalError? {
  do {
    let value = try await body()
    XCTFail("expected errno \(errno), got \(value)", file: file, line: line)
  } catch let error as LocalError {
    XCTAssertEqual(error.errno, errno, "\(error)", file: file, line: line)
    return error
  } catch {
    XCTFail("expected LocalError errno \(errno), got \(error)", file: file, line: line)
  }
  return nil
}
