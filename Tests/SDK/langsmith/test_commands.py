"""Commands through the SDK: run over the WebSocket (stdout, stderr, exit codes, env, cwd,
timeouts), streaming with stdin and kill, reconnects by offset (one after the test cuts the
WebSocket in the middle of a command's output), kill_on_disconnect."""

import os
import socket
import time

import pytest
from langsmith.sandbox import CommandTimeoutError, SandboxOperationError


def wait_gone(pid, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_run_collects_stdout_stderr_and_exit_code(sandbox):
    result = sandbox.run("echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert not result.success
    assert sandbox.run("true").success


def test_run_with_env_and_cwd(sandbox, agent, folder):
    result = sandbox.run("echo $GREETING; pwd", env={"GREETING": "hi there"}, cwd=f"/home/user/{folder}")
    greeting, cwd = result.stdout.splitlines()
    assert greeting == "hi there"
    assert os.path.realpath(cwd) == os.path.realpath(agent.host_path(folder))
    root = sandbox.run("echo $SANDBOX_ROOT").stdout.strip()
    assert os.path.realpath(root) == os.path.realpath(agent.root)


def test_a_missing_cwd_is_an_error(sandbox):
    with pytest.raises(SandboxOperationError):
        sandbox.run("true", cwd="/no/such/dir")


def test_timeout_raises(sandbox):
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        sandbox.run("sleep 20", timeout=1)
    assert time.monotonic() - started < 10


def test_multibyte_output_survives_chunking(sandbox):
    result = sandbox.run("head -c 100001 /dev/zero | tr '\\0' x; for i in $(seq 1 3000); do printf 'é€'; done")
    assert result.stdout == "x" * 100001 + "é€" * 3000


def test_a_slow_reader_loses_nothing(sandbox):
    """Output waits for an attached reader rather than overrunning the ring (4 MiB)."""
    size = 12_000_000
    handle = sandbox.run(f"head -c {size} /dev/zero | tr '\\0' a", wait=False)
    received = 0
    for chunk in handle:
        assert chunk.offset == received
        received += len(chunk.data)
        time.sleep(0.001)
    assert received == size and handle.result.exit_code == 0


def test_output_nobody_reads_is_bounded_to_the_most_recent(sandbox):
    size = 6_000_000
    handle = sandbox.run(f"head -c {size} /dev/zero | tr '\\0' b; echo end", wait=False)
    handle._control._ws.close()
    time.sleep(1.5)
    chunks = list(sandbox.reconnect(handle.command_id))
    first = chunks[0].offset
    assert 0 < first <= size + 4 - 4 * 1024 * 1024
    text = "".join(c.data for c in chunks)
    assert len(text) == size + 4 - first and text.endswith("bend\n")


def test_streaming_with_callbacks(sandbox):
    seen = []
    result = sandbox.run("for i in 1 2 3; do echo $i; sleep 0.05; done", on_stdout=seen.append)
    assert "".join(seen) == "1\n2\n3\n" == result.stdout


def test_stdin_streams_into_the_command(sandbox):
    handle = sandbox.run("cat; echo done >&2", wait=False, close_input=False)
    assert handle.command_id and handle.pid
    handle.send_input("hello\n")
    handle.send_input("wörld\n")
    handle.close_input()
    result = handle.result
    assert (result.stdout, result.stderr, result.exit_code) == ("hello\nwörld\n", "done\n", 0)


def test_stdin_is_closed_by_default(sandbox):
    assert sandbox.run("cat").stdout == ""


def test_kill_ends_the_command_and_its_children(sandbox, agent, folder):
    handle = sandbox.run(f"sleep 30 & echo $! > {folder}/child; wait", wait=False)
    pid = handle.pid
    child_file = agent.host_path(f"{folder}/child")
    deadline = time.monotonic() + 10
    while not (os.path.exists(child_file) and open(child_file).read().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(open(child_file).read())
    os.kill(child, 0)
    handle.kill()
    assert wait_gone(pid)
    assert wait_gone(child)


def test_reconnect_after_a_cut_loses_and_repeats_nothing(sandbox, monkeypatch):
    reconnects = []
    original = sandbox.reconnect

    def counting(*args, **kwargs):
        reconnects.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(sandbox, "reconnect", counting)
    lines = 80
    handle = sandbox.run(
        f"for i in $(seq 1 {lines}); do echo line-$i; echo err-$i >&2; sleep 0.01; done", wait=False
    )
    offsets = {"stdout": 0, "stderr": 0}
    cut = False
    for chunk in handle:
        assert chunk.offset == offsets[chunk.stream], "a chunk was lost or repeated"
        offsets[chunk.stream] += len(chunk.data.encode())
        if not cut and offsets["stdout"] > 100:
            # Cut the connection under the SDK, as a network failure would.
            handle._control._ws.socket.shutdown(socket.SHUT_RDWR)
            cut = True
    result = handle.result
    assert cut and len(reconnects) == 1
    assert reconnects[0]["stdout_offset"] > 100
    assert result.stdout == "".join(f"line-{i}\n" for i in range(1, lines + 1))
    assert result.stderr == "".join(f"err-{i}\n" for i in range(1, lines + 1))
    assert result.exit_code == 0


def test_reconnect_replays_from_offsets_after_the_end(sandbox):
    first = sandbox.run("printf abc; printf def >&2", wait=False)
    assert first.result.stdout == "abc"
    again = sandbox.reconnect(first.command_id, stdout_offset=1, stderr_offset=2)
    result = again.result
    assert (result.stdout, result.stderr, result.exit_code) == ("bc", "f", 0)


def test_a_command_survives_a_dropped_connection(sandbox):
    handle = sandbox.run("sleep 1; echo later", wait=False)
    handle._control._ws.close()
    again = sandbox.reconnect(handle.command_id)
    assert again.result.stdout == "later\n"


def test_kill_on_disconnect(sandbox):
    handle = sandbox.run("sleep 30", wait=False, kill_on_disconnect=True)
    pid = handle.pid
    handle._control._ws.close()
    assert wait_gone(pid)


def test_reconnecting_to_an_unknown_command_fails(sandbox):
    with pytest.raises(SandboxOperationError):
        sandbox.reconnect("no-such-command").result


def test_idle_timeout_kills_a_command_nobody_attaches_to(sandbox):
    handle = sandbox.run("sleep 30", wait=False, idle_timeout=1)
    pid = handle.pid
    handle._control._ws.close()
    assert wait_gone(pid, seconds=10)


def test_run_config_sets_work_dir_and_env(sandbox, agent, folder):
    result = sandbox.run("echo $A-$B; pwd", run_config={"work_dir": f"/home/user/{folder}", "env_vars": {"A": "1", "B": "2"}})
    values, cwd = result.stdout.splitlines()
    assert values == "1-2"
    assert os.path.realpath(cwd) == os.path.realpath(agent.host_path(folder))


def test_pty(sandbox):
    result = sandbox.run("test -t 1 && echo on-a-tty", pty=True)
    assert result.stdout.strip() == "on-a-tty"


def test_execute_is_idempotent_by_command_id(agent):
    """Two `execute` messages with one command_id attach to one command (the SDK re-sends an
    execute whose connection closed before `started`)."""
    import json
    import uuid

    from websockets.sync.client import connect

    url = agent.url.replace("http://", "ws://") + "/execute/ws"
    command_id = uuid.uuid4().hex
    execute = {"type": "execute", "command": "sleep 0.5; echo once", "command_id": command_id}
    pids = []
    outputs = []
    for _ in range(2):
        with connect(url) as ws:
            ws.send(json.dumps(execute))
            messages = [json.loads(m) for m in ws]
        assert messages[0]["type"] == "started" and messages[0]["command_id"] == command_id
        pids.append(messages[0]["pid"])
        outputs.append("".join(m["data"] for m in messages if m["type"] == "stdout"))
        assert messages[-1] == {"type": "exit", "exit_code": 0}
    assert pids[0] == pids[1]
    assert outputs == ["once\n", "once\n"]


def test_stopping_the_agent_kills_its_commands(pytestconfig):
    from conftest import Agent
    from langsmith.sandbox import Sandbox, SandboxClient

    own = Agent(pytestconfig.getoption("--agent"))
    try:
        with SandboxClient(api_endpoint=own.url + "/api/v2/sandboxes", api_key="k") as client:
            box = Sandbox.from_dict({"name": "own", "dataplane_url": own.url}, client=client)
            handle = box.run("sleep 30", wait=False)
            pid = handle.pid
            own.stop()
            assert wait_gone(pid)
    finally:
        own.stop()
