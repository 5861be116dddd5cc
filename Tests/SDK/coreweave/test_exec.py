"""exec through StreamExec: binary output, stdin, exit codes, stderr, environment."""

import os

import pytest


def test_binary_stdout(sandbox):
    result = sandbox.exec(["printf", "\\000\\001\\377\\r\\n"]).result()
    assert result.stdout_bytes == b"\x00\x01\xff\r\n"
    assert result.returncode == 0


def test_large_binary_stdout(sandbox, folder):
    data = os.urandom(5 << 20)
    path = os.path.join(folder, "out.bin")
    with open(path, "wb") as f:
        f.write(data)
    assert sandbox.exec(["cat", path]).result().stdout_bytes == data


def test_exit_codes(sandbox):
    for code in (0, 1, 3, 42, 255):
        assert sandbox.exec(["sh", "-c", f"exit {code}"]).result().returncode == code


def test_killed_by_signal(sandbox):
    assert sandbox.exec(["sh", "-c", "kill -9 $$"]).result().returncode == 137


def test_stderr_apart_from_stdout(sandbox):
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 5"]).result()
    assert result.stdout_bytes == b"out\n"
    assert result.stderr_bytes == b"err\n"
    assert result.returncode == 5


def test_argv_reaches_the_command_verbatim(sandbox):
    args = ["two words", "$HOME", "'quoted'", "back\\slash", ""]
    result = sandbox.exec(["python3", "-c", "import sys; print(sys.argv[1:])", *args]).result()
    assert result.stdout_bytes.decode().strip() == repr(args)


def test_missing_command_fails(sandbox):
    result = sandbox.exec(["no-such-command-anywhere"]).result()
    assert result.returncode == 127


def test_check_raises_on_failure(sandbox):
    from cwsandbox.exceptions import SandboxExecutionError

    with pytest.raises(SandboxExecutionError):
        sandbox.exec(["false"], check=True).result()


def test_stdin_binary_round_trip(sandbox):
    data = os.urandom(300_000) + b"\x00\xff"
    process = sandbox.exec(["cat"], stdin=True)
    process.stdin.write(data).result()
    process.stdin.close().result()
    result = process.result()
    assert result.returncode == 0
    assert result.stdout_bytes == data


def test_stdin_close_is_eof(sandbox):
    process = sandbox.exec(["wc", "-c"], stdin=True)
    process.stdin.write(b"12345").result()
    process.stdin.close().result()
    assert process.result().stdout_bytes.strip() == b"5"


def test_no_stdin_reads_eof(sandbox):
    # Without stdin the SDK half-closes at once: the command must see EOF, not hang.
    result = sandbox.exec(["cat"], timeout_seconds=20).result()
    assert result.returncode == 0
    assert result.stdout_bytes == b""


def test_stdin_ignored_by_command_that_exits(sandbox):
    process = sandbox.exec(["head", "-c", "3"], stdin=True)
    process.stdin.write(b"abcdef" * 100_000).result()
    process.stdin.close().result()
    result = process.result()
    assert result.stdout_bytes == b"abc"


def test_cwd_is_honoured(sandbox, folder):
    result = sandbox.exec(["pwd"], cwd=folder).result()
    assert result.stdout_bytes.decode().strip() == os.path.realpath(folder)


def test_streamed_stdout_lines(sandbox):
    process = sandbox.exec(["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done"])
    lines = "".join(process.stdout)
    assert lines == "line1\nline2\nline3\n"
    assert process.result().returncode == 0


def test_timeout_kills_the_command(sandbox):
    from cwsandbox.exceptions import SandboxTimeoutError

    with pytest.raises(SandboxTimeoutError):
        sandbox.exec(["sleep", "30"], timeout_seconds=1).result()
