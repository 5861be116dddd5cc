import Foundation

/// A loopback TCP proxy in front of an agent that loses answers: the first `drops` requests
/// whose bytes contain `marker` reach the agent, which carries them out, but their connection
/// is closed before the answer gets back (a connection cut, or the agent killed, just after).
/// Everything else passes untouched.
public final class AnswerDroppingProxy: @unchecked Sendable {
  public let url: String
  private let child: ChildProcess

  private static let script = """
    import socket, sys, threading, time
    upstream, marker, left = int(sys.argv[1]), sys.argv[2].encode(), [int(sys.argv[3])]
    lock = threading.Lock()
    def request(client, server, cut):
        seen = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                seen = (seen + data)[-(1 << 20):]
                if marker in seen:
                    seen = b""
                    with lock:
                        if left[0] > 0:
                            left[0] -= 1
                            cut.set()
                            print("dropped", flush=True)
                server.sendall(data)
                if cut.is_set():
                    time.sleep(1)  # the agent carries it out
                    break
        except OSError:
            pass
        for end in (client, server):
            try:
                end.shutdown(socket.SHUT_RDWR)
                end.close()
            except OSError:
                pass
    def answer(server, client, cut):
        try:
            while True:
                data = server.recv(65536)
                if not data or cut.is_set():
                    break
                client.sendall(data)
        except OSError:
            pass
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print("listening on", listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", upstream))
        cut = threading.Event()
        threading.Thread(target=request, args=(client, server, cut), daemon=True).start()
        threading.Thread(target=answer, args=(server, client, cut), daemon=True).start()
    """

  /// `upstream`: the agent's http://127.0.0.1:PORT.
  public init(upstream: String, marker: String, drops: Int = 1) throws {
    guard let port = upstream.split(separator: ":").last.flatMap({ Int($0) }) else {
      throw TestSupportError("no port in \(upstream)")
    }
    child = try ChildProcess(
      executable: "/usr/bin/env",
      arguments: ["python3", "-c", Self.script, String(port), marker, String(drops)])
    let child = child
    let started = child.waitFor(timeout: 20) {
      !child.isRunning || child.standardOutput.contains("listening on ")
    }
    guard started, child.isRunning,
      let line = child.standardOutput.split(separator: "\n").first,
      let listening = line.split(separator: " ").last.flatMap({ Int($0) })
    else {
      child.stop(grace: 1)
      throw TestSupportError("the proxy did not start: \(child.standardError)")
    }
    url = "http://127.0.0.1:\(listening)"
  }

  /// Answers dropped so far.
  public var dropped: Int {
    child.standardOutput.split(separator: "\n").filter { $0 == "dropped" }.count
  }

  public func stop() { child.stop(grace: 1) }
  deinit { child.stop(grace: 1) }
}
