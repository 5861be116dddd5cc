"""sandbox.commands and sandbox.pty: the official SDK against the agent."""

import os
import time

import pytest
from e2b import (
    CommandExitException,
    NotFoundException,
    PtySize,
    TimeoutException,
)


def test_run(sandbox):
    result = sandbox.commands.run("echo hi")
    assert result.stdout == "hi\n"
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.error is None


def test_run_with_envs_and_cwd(sandbox, folder):
    result = sandbox.commands.run('echo "$GREETING $(pwd)"', envs={"GREETING": "hello"}, cwd=folder)
    # The agent serves a folder as '/': the process sees the host path, the SDK the protocol one.
    assert result.stdout.startswith("hello ")
    assert result.stdout.rstrip().endswith(folder)


def test_callbacks_get_stdout_and_stderr(sandbox):
    stdout, stderr = [], []
    result = sandbox.commands.run(
        "echo out; echo err >&2", on_stdout=stdout.append, on_stderr=stderr.append
    )
    assert "".join(stdout) == "out\n" == result.stdout
    assert "".join(stderr) == "err\n" == result.stderr


def test_non_zero_exit_raises_with_the_output(sandbox):
    with pytest.raises(CommandExitException) as raised:
        sandbox.commands.run("echo partial; echo broken >&2; exit 3")
    assert raised.value.exit_code == 3
    assert raised.value.stdout == "partial\n"
    assert raised.value.stderr == "broken\n"
    assert raised.value.error == "exit status 3"


def test_missing_command_exits_127(sandbox):
    with pytest.raises(CommandExitException) as raised:
        sandbox.commands.run("no-such-command-here")
    assert raised.value.exit_code == 127


def test_missing_cwd_is_an_error(sandbox):
    with pytest.raises(Exception) as raised:
        sandbox.commands.run("true", cwd="/no/such/folder")
    assert "does not exist" in str(raised.value)


def test_timeout_ends_the_command(sandbox):
    began = time.monotonic()
    with pytest.raises(TimeoutException):
        sandbox.commands.run("sleep 20", timeout=1)
    assert time.monotonic() - began < 10


def test_background_list_and_kill(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    assert handle.pid > 0
    listed = {p.pid: p for p in sandbox.commands.list()}
    assert handle.pid in listed
    assert listed[handle.pid].cmd == "/bin/bash"
    assert listed[handle.pid].args == ["-l", "-c", "sleep 30"]
    assert handle.kill() is True
    with pytest.raises(CommandExitException) as raised:
        handle.wait()
    assert raised.value.error == "signal: killed"
    assert handle.pid not in {p.pid for p in sandbox.commands.list()}


def test_kill_by_pid(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    assert sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()
    # Gone: envd answers not_found, which the SDK reports as False.
    assert sandbox.commands.kill(handle.pid) is False


def test_background_wait_collects_output(sandbox):
    handle = sandbox.commands.run("sleep 0.3; echo done", background=True)
    result = handle.wait()
    assert result.stdout == "done\n"
    assert result.exit_code == 0


def test_send_stdin_and_close_stdin(sandbox):
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("first line\n")
    sandbox.commands.send_stdin(handle.pid, b"second line\n")
    sandbox.commands.close_stdin(handle.pid)
    result = handle.wait()
    assert result.stdout == "first line\nsecond line\n"


def test_send_stdin_to_an_unknown_process_is_not_found(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.send_stdin(999999, "x")


def test_disconnect_leaves_the_command_running(sandbox, folder, agent):
    marker = f"{agent.root}{folder}/marker"
    handle = sandbox.commands.run(f"sleep 0.5; touch '{marker}'", background=True)
    handle.disconnect()
    deadline = time.monotonic() + 10
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.path.exists(marker)


def test_connect_to_a_running_command(sandbox):
    handle = sandbox.commands.run("sleep 0.5; echo late", background=True)
    handle.disconnect()
    attached = sandbox.commands.connect(handle.pid)
    assert attached.wait().stdout == "late\n"


def test_stream_input(sandbox):
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    try:
        sandbox.commands.stream_input(handle.pid, iter([b"a", b"b\n"]), timeout=5)
        sandbox.commands.close_stdin(handle.pid)
        assert handle.wait().stdout == "ab\n"
    finally:
        sandbox.commands.kill(handle.pid)


def test_pty(sandbox):
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    output = []
    sandbox.pty.send_stdin(terminal.pid, b"echo from-a-pty; exit\n")
    sandbox.pty.resize(terminal.pid, PtySize(rows=30, cols=100))
    terminal.wait(on_pty=lambda data: output.append(bytes(data)))
    assert b"from-a-pty" in b"".join(output)


def test_connect_to_an_unknown_pid_is_not_found(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.connect(999999)


def test_connect_after_the_end_still_gets_the_exit_code(sandbox):
    # envd keeps the end of a process for 30 s, for a client that attaches late.
    handle = sandbox.commands.run("sleep 0.2; exit 3", background=True)
    handle.disconnect()
    time.sleep(1)
    with pytest.raises(CommandExitException) as failure:
        sandbox.commands.connect(handle.pid).wait()
    assert failure.value.exit_code == 3


def test_stream_input_to_an_unknown_process_is_not_found(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.stream_input(999999, [b"x"], timeout=5)


def test_pty_connect_stream_input_and_kill(sandbox):
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=20)
    attached = sandbox.pty.connect(terminal.pid, timeout=20)
    assert terminal.pid in [process.pid for process in sandbox.commands.list()]
    # The terminal echoes what is typed: only the shell's answer reads "via-42".
    sandbox.pty.stream_input(terminal.pid, [b"stty size; echo via-$((40", b"+2))\n"], timeout=5)
    seen = b""
    for _, _, pty in attached:
        seen += bytes(pty or b"")
        if b"via-42" in seen and b"24 80" in seen:
            break
    assert b"via-42" in seen and b"24 80" in seen
    assert sandbox.pty.kill(terminal.pid)
    with pytest.raises(CommandExitException):
        terminal.wait()
    assert not sandbox.pty.kill(terminal.pid)


def test_pty_resize_of_an_unknown_pid_is_not_found(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.pty.resize(999999, PtySize(rows=10, cols=10))


def test_300_echo_calls_back_to_back(sandbox):
    # Pooled connections reused by streaming calls: once 35 of 300 failed.
    failures = []
    for i in range(300):
        try:
            result = sandbox.commands.run("echo hi")
            if result.stdout != "hi\n":
                failures.append((i, repr(result)))
        except Exception as error:  # every failure counts, whatever its kind
            failures.append((i, f"{type(error).__name__}: {error}"))
    assert failures == []
