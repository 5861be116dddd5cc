import Foundation
import TestSupport
import XCTest

/// PTYs: `pty` in Start, input through SendInput and StreamInput, resize through Update.
final class StreamingPtyTests: XCTestCase {
  var root: TemporaryDirectory!
  var agent: RunningAgent!

  override func setUpWithError() throws {
    root = try TemporaryDirectory(prefix: "agent-pty")
    agent = try RunningAgent(root: root.path)
  }

  override func tearDownWithError() throws {
    agent?.stop()
    root?.remove()
  }

  private func ptyStart(_ script: String, cols: Int = 80, rows: Int = 24) -> String {
    let arguments = String(
      decoding: try! JSONSerialization.data(withJSONObject: ["-c", script]), as: UTF8.self)
    return
      #"{"process":{"cmd":"sh","args":\#(arguments)},"pty":{"size":{"cols":\#(cols),"rows":\#(rows)}}}"#
  }

  private func startInBackground(_ json: String) throws -> (BackgroundStream, Int) {
    let stream = try BackgroundStream(agent, "/process.Process/Start", json)
    XCTAssertTrue(stream.waitFor { $0.startPID != nil }, "no start event")
    return (stream, try XCTUnwrap(stream.frames.startPID))
  }

  private func unary(_ method: String, _ json: String) throws -> ConnectWire.Reply {
    try ConnectWire.unary(agent, "/process.Process/" + method, json)
  }

  private func ptyInput(_ pid: Int, _ text: String) throws -> ConnectWire.Reply {
    let bytes = Data(text.utf8).base64EncodedString()
    return try unary("SendInput", #"{"process":{"pid":\#(pid)},"input":{"pty":"\#(bytes)"}}"#)
  }

  func testPtyIsTheControllingTerminalOfTheRequestedSize() throws {
    let frames = try ConnectWire.stream(
      agent, "/process.Process/Start",
      ptyStart(
        #"stty size; : </dev/tty && echo has-ctty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty"#,
        cols: 100, rows: 30)
    ).frames
    let output = frames.output("pty")
    XCTAssertTrue(output.contains("30 100\r\n"), output)
    XCTAssertTrue(output.contains("has-ctty"), output)
    XCTAssertTrue(output.contains("all-tty"), output)
    XCTAssertEqual(frames.output("stdout"), "", "PTY output comes as pty data, not stdout")
    XCTAssertEqual(frames.output("stderr"), "")
    XCTAssertEqual(frames.end?["status"] as? String, "exit status 0")
    XCTAssertEqual(frames.endStream?.json.isEmpty, true)
  }

  func testPtyInputAndResize() throws {
    let (started, pid) = try startInBackground(
      ptyStart(#"read line; echo "got:$line"; stty size"#))
    let resize = try unary(
      "Update", #"{"process":{"pid":\#(pid)},"pty":{"size":{"cols":120,"rows":50}}}"#)
    XCTAssertEqual(resize.status, 200, resize.text)
    XCTAssertEqual(resize.text, "{}")
    let input = try ptyInput(pid, "hello\n")
    XCTAssertEqual(input.status, 200, input.text)
    let frames = started.finish()
    let output = frames.output("pty")
    XCTAssertTrue(output.contains("hello\r\n"), "the terminal echoes input: \(output)")
    XCTAssertTrue(output.contains("got:hello\r\n"), output)
    XCTAssertTrue(output.contains("50 120\r\n"), output)
    XCTAssertEqual(frames.end?["status"] as? String, "exit status 0")
  }

  func testCtrlDEndsCatAndSignalsReachThePty() throws {
    let (started, pid) = try startInBackground(ptyStart("exec cat"))
    XCTAssertEqual(try ptyInput(pid, "line\n\u{04}").status, 200)
    XCTAssertEqual(started.finish().end?["status"] as? String, "exit status 0")

    let (sleeper, sleeping) = try startInBackground(ptyStart("exec sleep 30"))
    let kill = try unary(
      "SendSignal", #"{"process":{"pid":\#(sleeping)},"signal":"SIGNAL_SIGTERM"}"#)
    XCTAssertEqual(kill.status, 200)
    XCTAssertEqual(sleeper.finish().end?["status"] as? String, "signal: terminated")
  }

  func testConnectAndStreamInputOnAPty() throws {
    let (started, pid) = try startInBackground(ptyStart(#"read a; echo "A:$a""#))
    let attached = try BackgroundStream(
      agent, "/process.Process/Connect", #"{"process":{"pid":\#(pid)}}"#)
    XCTAssertTrue(attached.waitFor { $0.startPID == pid })
    let bytes = Data("xyz\n".utf8).base64EncodedString()
    let reply = try ConnectWire.post(
      agent, "/process.Process/StreamInput",
      body: ConnectWire.envelope(#"{"start":{"process":{"pid":\#(pid)}}}"#)
        + ConnectWire.envelope(#"{"data":{"input":{"pty":"\#(bytes)"}}}"#))
    XCTAssertEqual(reply.frames.endStream?.json.isEmpty, true, reply.text)
    XCTAssertTrue(attached.finish().output("pty").contains("A:xyz"))
    XCTAssertTrue(started.finish().output("pty").contains("A:xyz"))
  }

  func testPtyErrors() throws {
    let (_, pid) = try startInBackground(ptyStart("exec sleep 30"))
    let stdin = try unary(
      "SendInput", #"{"process":{"pid":\#(pid)},"input":{"stdin":"eA=="}}"#)
    XCTAssertEqual(stdin.status, 500)
    XCTAssertEqual(stdin.json["code"] as? String, "internal")
    XCTAssertEqual(
      stdin.json["message"] as? String,
      "error writing to stdin: tty assigned to process — input should be written to the pty, not the stdin"
    )
    let close = try unary("CloseStdin", #"{"process":{"pid":\#(pid)}}"#)
    XCTAssertEqual(close.status, 500)
    XCTAssertEqual(close.json["code"] as? String, "unknown")
    XCTAssertEqual(
      close.json["message"] as? String,
      "error closing stdin: cannot close stdin for PTY process — send Ctrl+D (0x04) instead")
    _ = try unary("SendSignal", #"{"process":{"pid":\#(pid)},"signal":"SIGNAL_SIGKILL"}"#)

    // A process without a PTY.
    let (_, plain) = try startInBackground(
      #"{"process":{"cmd":"sleep","args":["30"]},"stdin":true}"#)
    let resize = try unary(
      "Update", #"{"process":{"pid":\#(plain)},"pty":{"size":{"cols":10,"rows":10}}}"#)
    XCTAssertEqual(resize.status, 500)
    XCTAssertEqual(resize.json["code"] as? String, "internal")
    XCTAssertEqual(
      resize.json["message"] as? String, "error resizing tty: tty not assigned to process")
    let nothing = try unary("Update", #"{"process":{"pid":\#(plain)}}"#)
    XCTAssertEqual(nothing.status, 200, "an Update without pty changes nothing")
    let ptyBytes = try ptyInput(plain, "x")
    XCTAssertEqual(ptyBytes.status, 500)
    XCTAssertEqual(
      ptyBytes.json["message"] as? String,
      "error writing to tty: tty not assigned to process — input should be written to the stdin, not the tty"
    )
    _ = try unary("SendSignal", #"{"process":{"pid":\#(plain)},"signal":"SIGNAL_SIGKILL"}"#)

    let unknown = try unary(
      "Update", #"{"process":{"pid":999999},"pty":{"size":{"cols":10,"rows":10}}}"#)
    XCTAssertEqual(unknown.status, 404)
    XCTAssertEqual(unknown.json["message"] as? String, "process with pid 999999 not found")
  }
}
