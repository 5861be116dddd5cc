import Foundation
import TestSupport
import XCTest

/// process.Process/Connect and StreamInput over real HTTP, as envd serves them.
final class StreamingProcessAttachTests: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-attach")
    agent = try RunningAgent(root: root.path)
  }

  override func tearDownWithError() throws {
    agent?.stop()
    root?.remove()
  }

  private func startInBackground(_ json: String, headers: [String] = []) throws -> (
    BackgroundStream, Int
  ) {
    let stream = try BackgroundStream(agent, "/process.Process/Start", json, headers: headers)
    XCTAssertTrue(stream.waitFor { $0.startPID != nil }, "no start event")
    return (stream, try XCTUnwrap(stream.frames.startPID))
  }

  private func connect(_ selector: String, headers: [String] = []) throws -> ConnectWire.Reply {
    try ConnectWire.stream(
      agent, "/process.Process/Connect", #"{"process":\#(selector)}"#, headers: headers)
  }

  private func streamInput(_ messages: [String]) throws -> ConnectWire.Reply {
    try ConnectWire.post(
      agent, "/process.Process/StreamInput",
      body: messages.reduce(into: Data()) { $0.append(ConnectWire.envelope($1)) })
  }

  private func stdin(_ text: String) -> String {
    #"{"data":{"input":{"stdin":"\#(Data(text.utf8).base64EncodedString())"}}}"#
  }

  private func kill(_ pid: Int) throws {
    _ = try ConnectWire.unary(
      agent, "/process.Process/SendSignal",
      #"{"process":{"pid":\#(pid)},"signal":"SIGNAL_SIGKILL"}"#)
  }

  // MARK: Connect

  func testConnectByPidGetsStartThenOutputFromNowOnThenEnd() throws {
    let (started, pid) = try startInBackground(
      #"{"process":{"cmd":"sh","args":["-c","echo early; sleep 1; echo late; exit 4"]},"stdin":false}"#
    )
    XCTAssertTrue(started.waitFor { $0.output("stdout") == "early\n" })
    let reply = try connect(#"{"pid":\#(pid)}"#)
    XCTAssertEqual(reply.status, 200)
    XCTAssertTrue(reply.headers.lowercased().contains("content-type: application/connect+json"))
    let frames = reply.frames
    XCTAssertEqual(
      (frames.first?.processEvent?["start"] as? [String: Any])?["pid"] as? Int, pid,
      "the start event with the pid comes first")
    XCTAssertEqual(frames.output("stdout"), "late\n", "output from the attach on, not before")
    XCTAssertEqual(frames.end?["exitCode"] as? Int, 4)
    XCTAssertEqual(frames.end?["status"] as? String, "exit status 4")
    XCTAssertEqual(frames.endStream?.json.isEmpty, true)
    // The Start stream got everything too: output goes to every subscriber.
    let startFrames = started.finish()
    XCTAssertEqual(startFrames.output("stdout"), "early\nlate\n")
    XCTAssertEqual(startFrames.end?["exitCode"] as? Int, 4)
  }

  func testConnectByTagAfterTheStartStreamWasAborted() throws {
    let (started, pid) = try startInBackground(
      #"{"process":{"cmd":"sh","args":["-c","sleep 1.5; echo one; exec sleep 30"]},"stdin":false,"tag":"job"}"#
    )
    started.abort()
    let attached = try BackgroundStream(
      agent, "/process.Process/Connect", #"{"process":{"tag":"job"}}"#,
      headers: ["Keepalive-Ping-Interval: 1"])
    XCTAssertTrue(attached.waitFor { $0.output("stdout") == "one\n" })
    XCTAssertEqual(attached.frames.startPID, pid)
    try kill(pid)
    let frames = attached.finish()
    XCTAssertEqual(frames.end?["status"] as? String, "signal: killed")
    XCTAssertEqual(frames.endStream?.json.isEmpty, true)
  }

  func testTwoConnectStreamsBothGetTheOutput() throws {
    let (started, pid) = try startInBackground(
      #"{"process":{"cmd":"sh","args":["-c","sleep 1; seq 1 2000"]},"stdin":false}"#)
    let first = try BackgroundStream(
      agent, "/process.Process/Connect", #"{"process":{"pid":\#(pid)}}"#)
    let second = try BackgroundStream(
      agent, "/process.Process/Connect", #"{"process":{"pid":\#(pid)}}"#)
    XCTAssertTrue(first.waitFor { $0.startPID == pid })
    XCTAssertTrue(second.waitFor { $0.startPID == pid })
    let expected = (1...2000).map(String.init).joined(separator: "\n") + "\n"
    XCTAssertEqual(first.finish().output("stdout"), expected)
    XCTAssertEqual(second.finish().output("stdout"), expected)
    XCTAssertEqual(started.finish().output("stdout"), expected)
  }

  func testConnectToUnknownPidOrTagIsNotFound() throws {
    let byPID = try connect(#"{"pid":999999}"#)
    XCTAssertEqual(byPID.status, 200, "streaming errors still come with HTTP 200")
    XCTAssertEqual(byPID.frames.count, 1)
    XCTAssertEqual(byPID.frames.endStream?.errorCode, "not_found")
    XCTAssertEqual(
      byPID.frames.endStream?.error?["message"] as? String, "process with pid 999999 not found")
    let byTag = try connect(#"{"tag":"nobody-has-this"}"#)
    XCTAssertEqual(byTag.frames.endStream?.errorCode, "not_found")
    XCTAssertEqual(
      byTag.frames.endStream?.error?["message"] as? String,
      "process with tag nobody-has-this not found")
    let empty = try connect("{}")
    XCTAssertEqual(empty.frames.endStream?.errorCode, "invalid_argument")
  }

  func testConnectAfterTheEndGetsTheRetainedExit() throws {
    let frames = try ConnectWire.stream(
      agent, "/process.Process/Start",
      #"{"process":{"cmd":"sh","args":["-c","exit 7"]},"stdin":false,"tag":"quick"}"#
    ).frames
    let pid = try XCTUnwrap(frames.startPID)
    for selector in [#"{"pid":\#(pid)}"#, #"{"tag":"quick"}"#] {
      let late = try connect(selector).frames
      XCTAssertEqual(late.startPID, pid, selector)
      XCTAssertEqual(late.end?["exitCode"] as? Int, 7, selector)
      XCTAssertEqual(late.endStream?.json.isEmpty, true, selector)
    }
    // Ended processes are not listed, nor can they be signalled.
    XCTAssertFalse(
      try ConnectWire.unary(agent, "/process.Process/List", "{}").text.contains("quick"))
    let signal = try ConnectWire.unary(
      agent, "/process.Process/SendSignal",
      #"{"process":{"pid":\#(pid)},"signal":"SIGNAL_SIGKILL"}"#)
    XCTAssertEqual(signal.status, 404)
  }

  func testConnectDeadlineEndsTheStreamButNotTheProcess() throws {
    let (_, pid) = try startInBackground(
      #"{"process":{"cmd":"sleep","args":["30"]},"stdin":false,"tag":"stays"}"#)
    let reply = try connect(#"{"pid":\#(pid)}"#, headers: ["Connect-Timeout-Ms: 500"])
    XCTAssertEqual(reply.frames.startPID, pid)
    XCTAssertEqual(reply.frames.endStream?.errorCode, "deadline_exceeded")
    XCTAssertTrue(
      try ConnectWire.unary(agent, "/process.Process/List", "{}").text.contains("stays"))
    try kill(pid)
  }

  // MARK: StreamInput

  func testStreamInputWritesDataEventsInOrder() throws {
    let (started, pid) = try startInBackground(#"{"process":{"cmd":"cat"},"stdin":true}"#)
    let reply = try streamInput([
      #"{"start":{"process":{"pid":\#(pid)}}}"#, stdin("a"), #"{"keepalive":{}}"#, stdin("b\n"),
    ])
    XCTAssertEqual(reply.status, 200)
    XCTAssertTrue(reply.headers.lowercased().contains("content-type: application/connect+json"))
    XCTAssertEqual(reply.frames.count, 2, "the reply message, then the end-stream")
    XCTAssertEqual(reply.frames.first?.isEndStream, false)
    XCTAssertEqual(reply.frames.first?.json.isEmpty, true)
    XCTAssertEqual(reply.frames.endStream?.json.isEmpty, true)
    XCTAssertTrue(started.waitFor { $0.output("stdout") == "ab\n" })
    _ = try ConnectWire.unary(agent, "/process.Process/CloseStdin", #"{"process":{"pid":\#(pid)}}"#)
    XCTAssertEqual(started.finish().end?["status"] as? String, "exit status 0")
  }

  func testStreamInputReachesTheProcessBeforeTheRequestEnds() throws {
    let (started, pid) = try startInBackground(
      #"{"process":{"cmd":"cat"},"stdin":true,"tag":"live"}"#)
    let folder = try TemporaryDirectory(prefix: "stream-input")
    defer { folder.remove() }
    try
      (ConnectWire.envelope(#"{"start":{"process":{"tag":"live"}}}"#)
      + ConnectWire.envelope(stdin("first\n")))
      .write(to: URL(fileURLWithPath: folder.path + "/one"))
    try ConnectWire.envelope(stdin("second\n")).write(
      to: URL(fileURLWithPath: folder.path + "/two"))
    // A chunked upload that holds its last message back for 3 s.
    let upload = try ChildProcess(
      executable: "/bin/sh",
      arguments: [
        "-c",
        #"{ cat "$1/one"; sleep 3; cat "$1/two"; } | curl -sS -N -X POST -T - -o "$1/reply" -H 'Expect:' -H 'Content-Type: application/connect+json' "$2""#,
        "sh", folder.path, agent.url + "/process.Process/StreamInput",
      ])
    XCTAssertTrue(started.waitFor(timeout: 2.5) { $0.output("stdout") == "first\n" })
    XCTAssertTrue(upload.isRunning, "the first message was written while the stream was open")
    XCTAssertNotNil(upload.waitForExit(timeout: 15))
    let reply = ConnectWire.frames(
      try Data(contentsOf: URL(fileURLWithPath: folder.path + "/reply")))
    XCTAssertEqual(reply.endStream?.json.isEmpty, true, upload.standardError)
    XCTAssertTrue(started.waitFor { $0.output("stdout") == "first\nsecond\n" })
    try kill(pid)
  }

  func testStreamInputErrors() throws {
    let unknown = try streamInput([#"{"start":{"process":{"pid":999999}}}"#, stdin("x")])
    XCTAssertEqual(unknown.status, 200)
    XCTAssertEqual(unknown.frames.count, 1)
    XCTAssertEqual(unknown.frames.endStream?.errorCode, "not_found")
    XCTAssertEqual(
      unknown.frames.endStream?.error?["message"] as? String, "process with pid 999999 not found")

    let noStart = try streamInput([stdin("x")])
    XCTAssertEqual(noStart.frames.endStream?.errorCode, "failed_precondition")

    // Input to a process that has ended: it is gone from the table.
    let ended = try ConnectWire.stream(
      agent, "/process.Process/Start", #"{"process":{"cmd":"true"},"stdin":true}"#
    ).frames
    let pid = try XCTUnwrap(ended.startPID)
    let late = try streamInput([#"{"start":{"process":{"pid":\#(pid)}}}"#, stdin("x")])
    XCTAssertEqual(late.frames.endStream?.errorCode, "not_found")
    let unary = try ConnectWire.unary(
      agent, "/process.Process/SendInput",
      #"{"process":{"pid":\#(pid)},"input":{"stdin":"eA=="}}"#)
    XCTAssertEqual(unary.status, 404)
    XCTAssertEqual(unary.json["code"] as? String, "not_found")

    // A process without a stdin pipe.
    let (_, quiet) = try startInBackground(
      #"{"process":{"cmd":"sleep","args":["30"]},"stdin":false}"#)
    let closed = try streamInput([#"{"start":{"process":{"pid":\#(quiet)}}}"#, stdin("x")])
    XCTAssertEqual(closed.frames.endStream?.errorCode, "internal")
    XCTAssertEqual(
      closed.frames.endStream?.error?["message"] as? String,
      "error writing to stdin: stdin not enabled or closed")
    try kill(quiet)

    // An empty stream is fine; an unknown event is unimplemented.
    XCTAssertEqual(try streamInput([]).frames.endStream?.json.isEmpty, true)
    XCTAssertEqual(try streamInput(["{}"]).frames.endStream?.errorCode, "unimplemented")
    // A frame cut short.
    let cut = try ConnectWire.post(
      agent, "/process.Process/StreamInput", body: ConnectWire.envelope("{}").dropLast(1))
    XCTAssertEqual(cut.frames.endStream?.errorCode, "invalid_argument")
  }
}
