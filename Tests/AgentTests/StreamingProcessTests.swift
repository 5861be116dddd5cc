import Foundation
import TestSupport
import XCTest

/// process.Process over real HTTP: Start streams, signals, stdin, errors.
final class StreamingProcessTests: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-process")
    agent = try RunningAgent(root: root.path)
  }

  override func tearDownWithError() throws {
    agent?.stop()
    root?.remove()
  }

  private func start(_ request: String, headers: [String] = [], maxTime: Int = 30) throws
    -> ConnectWire.Reply
  {
    try ConnectWire.stream(
      agent, "/process.Process/Start", request, headers: headers, maxTime: maxTime)
  }

  func testEchoStreamsStartDataEndAndEndStream() throws {
    let reply = try start(
      #"{"process":{"cmd":"echo","args":["hello","  two  words","$HOME"]},"stdin":false}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertTrue(reply.headers.lowercased().contains("content-type: application/connect+json"))
    let frames = reply.frames
    XCTAssertNotNil(frames.first?.processEvent?["start"], "start comes first")
    XCTAssertGreaterThan(frames.startPID ?? 0, 0)
    // Args arrive verbatim: no word splitting, no expansion.
    XCTAssertEqual(frames.output("stdout"), "hello   two  words $HOME\n")
    let end = try XCTUnwrap(frames.end)
    XCTAssertNil(end["exitCode"], "exitCode is omitted when 0")
    XCTAssertEqual(end["exited"] as? Bool, true)
    XCTAssertEqual(end["status"] as? String, "exit status 0")
    XCTAssertNil(end["error"])
    let last = try XCTUnwrap(frames.last)
    XCTAssertTrue(last.isEndStream)
    XCTAssertTrue(last.json.isEmpty, "success ends with {}")
  }

  func testExitCodeAndStderr() throws {
    let frames = try start(
      #"{"process":{"cmd":"sh","args":["-c","echo oops >&2; exit 3"]},"stdin":false}"#
    ).frames
    XCTAssertEqual(frames.output("stderr"), "oops\n")
    XCTAssertEqual(frames.output("stdout"), "")
    let end = try XCTUnwrap(frames.end)
    XCTAssertEqual(end["exitCode"] as? Int, 3)
    XCTAssertEqual(end["exited"] as? Bool, true)
    XCTAssertEqual(end["status"] as? String, "exit status 3")
    XCTAssertEqual(end["error"] as? String, "exit status 3")
    XCTAssertEqual(frames.endStream?.json.isEmpty, true)
  }

  func testLargeOutputArrivesWholeInChunksOfAtMost32KiB() throws {
    let frames = try start(
      #"{"process":{"cmd":"head","args":["-c","300000","/dev/zero"]},"stdin":false}"#
    ).frames
    var total = 0
    for frame in frames {
      guard let chunk = (frame.processEvent?["data"] as? [String: Any])?["stdout"] as? String else {
        continue
      }
      let bytes = try XCTUnwrap(Data(base64Encoded: chunk))
      XCTAssertLessThanOrEqual(bytes.count, 32 * 1024)
      total += bytes.count
    }
    XCTAssertEqual(total, 300_000)
  }

  func testCwdInsideTheRootAndSandboxRoot() throws {
    try FileManager.default.createDirectory(
      atPath: root.path + "/sub/dir", withIntermediateDirectories: true)
    let real = try XCTUnwrap(realpath(root.path, nil).map { String(cString: $0) })
    let frames = try start(
      #"{"process":{"cmd":"sh","args":["-c","pwd; echo $SANDBOX_ROOT"],"cwd":"/sub/dir"},"stdin":false}"#
    ).frames
    XCTAssertEqual(frames.output("stdout"), "\(real)/sub/dir\n\(real)\n")

    // Without cwd: the user's home inside the root if it exists, else the root.
    let rootFrames = try start(#"{"process":{"cmd":"pwd"},"stdin":false}"#).frames
    XCTAssertEqual(rootFrames.output("stdout"), "\(real)\n")
  }

  func testMissingCwdIsInvalidArgument() throws {
    let reply = try start(#"{"process":{"cmd":"pwd","cwd":"/nope"},"stdin":false}"#)
    XCTAssertEqual(reply.status, 200, "streaming errors still come with HTTP 200")
    let frames = reply.frames
    XCTAssertEqual(frames.count, 1)
    XCTAssertEqual(frames.endStream?.errorCode, "invalid_argument")
    XCTAssertEqual(frames.endStream?.error?["message"] as? String, "cwd '/nope' does not exist")
  }

  func testCwdCannotEscapeTheRootThroughASymlink() throws {
    try FileManager.default.createSymbolicLink(
      atPath: root.path + "/out", withDestinationPath: "/etc")
    let frames = try start(#"{"process":{"cmd":"pwd","cwd":"/out"},"stdin":false}"#).frames
    // In the jail `/out` → `/etc` means `<root>/etc`, which does not exist.
    XCTAssertEqual(frames.endStream?.errorCode, "invalid_argument")
  }

  func testEnvsAndUserEnvironment() throws {
    let frames = try start(
      #"{"process":{"cmd":"sh","args":["-c","echo $FOO $USER $HOME"],"envs":{"FOO":"bar baz","HOME":"/custom"}},"stdin":false}"#
    ).frames
    let user = String(cString: getpwuid(geteuid()).pointee.pw_name)
    XCTAssertEqual(frames.output("stdout"), "bar baz \(user) /custom\n")
  }

  func testRunsAsTheBasicAuthUser() throws {
    guard geteuid() == 0 else { throw XCTSkip("switching users needs root") }
    let nobody = "Authorization: Basic " + Data("nobody:".utf8).base64EncodedString()
    let frames = try start(
      #"{"process":{"cmd":"sh","args":["-c","id -u; id -g; echo $USER $HOME"]},"stdin":false}"#,
      headers: [nobody]
    ).frames
    let entry = try XCTUnwrap(getpwnam("nobody")).pointee
    XCTAssertEqual(
      frames.output("stdout"),
      "\(entry.pw_uid)\n\(entry.pw_gid)\nnobody \(String(cString: entry.pw_dir))\n")
  }

  func testUnknownUserIsUnauthenticated() throws {
    let header = "Authorization: Basic " + Data("no-such-user-x:".utf8).base64EncodedString()
    let frames = try start(#"{"process":{"cmd":"true"}}"#, headers: [header]).frames
    XCTAssertEqual(frames.endStream?.errorCode, "unauthenticated")
  }

  func testMissingCommandExits127() throws {
    let frames = try start(#"{"process":{"cmd":"no-such-command-xyz"},"stdin":false}"#).frames
    XCTAssertEqual(frames.end?["exitCode"] as? Int, 127)
  }

  func testSendSignalKillsALongSleepAndEndsWithSignal() throws {
    let stream = try BackgroundStream(
      agent, "/process.Process/Start", #"{"process":{"cmd":"sleep","args":["30"]},"stdin":false}"#)
    XCTAssertTrue(stream.waitFor { $0.startPID != nil })
    let pid = try XCTUnwrap(stream.frames.startPID)
    let reply = try ConnectWire.unary(
      agent, "/process.Process/SendSignal",
      #"{"process":{"pid":\#(pid)},"signal":"SIGNAL_SIGKILL"}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(reply.text, "{}")
    let frames = stream.finish()
    let end = try XCTUnwrap(frames.end)
    XCTAssertEqual(end["exited"] as? Bool, nil, "exited is false, so omitted")
    XCTAssertEqual(end["status"] as? String, "signal: killed")
    XCTAssertEqual(end["exitCode"] as? Int, -1)
    XCTAssertEqual(frames.endStream?.json.isEmpty, true)
  }

  func testSendSignalByTagAndUnknownPid() throws {
    let stream = try BackgroundStream(
      agent, "/process.Process/Start",
      #"{"process":{"cmd":"sleep","args":["30"]},"stdin":false,"tag":"sleeper"}"#)
    XCTAssertTrue(stream.waitFor { $0.startPID != nil })
    let list = try ConnectWire.unary(agent, "/process.Process/List", "{}")
    XCTAssertTrue(list.text.contains(#""tag":"sleeper""#), list.text)
    let reply = try ConnectWire.unary(
      agent, "/process.Process/SendSignal",
      #"{"process":{"tag":"sleeper"},"signal":"SIGNAL_SIGTERM"}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertEqual(stream.finish().end?["status"] as? String, "signal: terminated")

    let missing = try ConnectWire.unary(
      agent, "/process.Process/SendSignal", #"{"process":{"pid":999999},"signal":"SIGNAL_SIGKILL"}"#
    )
    XCTAssertEqual(missing.status, 404)
    XCTAssertEqual(missing.json["code"] as? String, "not_found")
    XCTAssertEqual(missing.json["message"] as? String, "process with pid 999999 not found")
  }

  func testStdinFedBySendInputThenClosed() throws {
    let stream = try BackgroundStream(
      agent, "/process.Process/Start", #"{"process":{"cmd":"cat"},"stdin":true}"#)
    XCTAssertTrue(stream.waitFor { $0.startPID != nil })
    let pid = try XCTUnwrap(stream.frames.startPID)
    for text in ["hello ", "world\n"] {
      let input = Data(text.utf8).base64EncodedString()
      let reply = try ConnectWire.unary(
        agent, "/process.Process/SendInput",
        #"{"process":{"pid":\#(pid)},"input":{"stdin":"\#(input)"}}"#)
      XCTAssertEqual(reply.status, 200, reply.text)
    }
    XCTAssertTrue(stream.waitFor { $0.output("stdout") == "hello world\n" })
    let close = try ConnectWire.unary(
      agent, "/process.Process/CloseStdin", #"{"process":{"pid":\#(pid)}}"#)
    XCTAssertEqual(close.status, 200, close.text)
    let frames = stream.finish()
    XCTAssertEqual(frames.output("stdout"), "hello world\n")
    XCTAssertEqual(frames.end?["status"] as? String, "exit status 0")
  }

  func testStdinFalseIsDevNull() throws {
    let frames = try start(#"{"process":{"cmd":"cat"},"stdin":false}"#, maxTime: 10).frames
    XCTAssertEqual(frames.end?["status"] as? String, "exit status 0")
    XCTAssertEqual(frames.output("stdout"), "")
  }

  func testAbortingTheStreamDoesNotKillTheProcess() throws {
    let marker = root.path + "/done"
    let stream = try BackgroundStream(
      agent, "/process.Process/Start",
      #"{"process":{"cmd":"sh","args":["-c","sleep 1; echo late; touch \"$SANDBOX_ROOT/done\""]},"stdin":false}"#
    )
    XCTAssertTrue(stream.waitFor { $0.startPID != nil })
    stream.abort()
    let deadline = Date().addingTimeInterval(10)
    while !FileManager.default.fileExists(atPath: marker) && Date() < deadline {
      Thread.sleep(forTimeInterval: 0.1)
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: marker), "the process ran to its end")
  }

  func testConnectTimeoutKillsTheProcess() throws {
    let began = Date()
    let reply = try start(
      #"{"process":{"cmd":"sleep","args":["20"]},"stdin":false}"#,
      headers: ["Connect-Timeout-Ms: 500"])
    XCTAssertLessThan(Date().timeIntervalSince(began), 10)
    XCTAssertEqual(reply.frames.endStream?.errorCode, "deadline_exceeded")
    XCTAssertNotNil(reply.frames.startPID)
  }

  func testKillTimeoutHoldsAfterTheStreamIsAborted() throws {
    let stream = try BackgroundStream(
      agent, "/process.Process/Start",
      #"{"process":{"cmd":"sleep","args":["30"]},"stdin":false,"tag":"doomed"}"#,
      headers: ["Connect-Timeout-Ms: 1500"])
    XCTAssertTrue(stream.waitFor { $0.startPID != nil })
    stream.abort()
    func listed() throws -> Bool {
      try ConnectWire.unary(agent, "/process.Process/List", "{}").text.contains("doomed")
    }
    XCTAssertTrue(try listed(), "still running after the abort")
    let deadline = Date().addingTimeInterval(10)
    while try listed(), Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
    XCTAssertFalse(try listed(), "killed at its timeout")
  }

  func testKeepalivesWhileQuiet() throws {
    let frames = try start(
      #"{"process":{"cmd":"sleep","args":["2.5"]},"stdin":false}"#,
      headers: ["Keepalive-Ping-Interval: 1"]
    ).frames
    let keepalives = frames.filter { $0.processEvent?["keepalive"] != nil }.count
    XCTAssertGreaterThanOrEqual(keepalives, 1)
    XCTAssertNotNil(frames.end)
  }
}
