"""The SSE transport (`LANGSMITH_EXPERIMENTAL_FEATURES=sandbox_sse_exec`):
`/execute/stream/start|resume` with base64 output and byte offsets."""

import pytest
from langsmith.sandbox import CommandTimeoutError, SandboxOperationError


@pytest.fixture(autouse=True)
def sse(monkeypatch):
    monkeypatch.setenv("LANGSMITH_EXPERIMENTAL_FEATURES", "sandbox_sse_exec")


def test_run_over_sse(sandbox):
    result = sandbox.run("echo out; echo err >&2; exit 4")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 4)


def test_sse_output_is_binary_safe_text(sandbox):
    result = sandbox.run("head -c 200001 /dev/zero | tr '\\0' y; for i in $(seq 1 5000); do printf 'ü'; done")
    assert result.stdout == "y" * 200001 + "ü" * 5000


def test_sse_streaming_handle(sandbox):
    handle = sandbox.run("for i in 1 2 3; do echo $i; sleep 0.05; done", wait=False)
    chunks = list(handle)
    assert "".join(c.data for c in chunks) == "1\n2\n3\n"
    assert handle.result.exit_code == 0


def test_sse_resume_from_offsets(sandbox):
    first = sandbox.run("printf hello; printf world >&2", wait=False)
    assert first.result.stdout == "hello"
    again = sandbox.reconnect(first.command_id, stdout_offset=2, stderr_offset=5)
    result = again.result
    assert (result.stdout, result.stderr) == ("llo", "")


def test_sse_timeout(sandbox):
    with pytest.raises(CommandTimeoutError):
        sandbox.run("sleep 20", timeout=1)


def test_sse_resume_of_an_unknown_command(sandbox):
    with pytest.raises(SandboxOperationError):
        sandbox.reconnect("no-such-command").result


def test_sse_large_output_is_complete(sandbox):
    size = 12_000_000
    handle = sandbox.run(f"head -c {size} /dev/zero | tr '\\0' z", wait=False)
    received = 0
    for chunk in handle:
        assert chunk.offset == received
        received += len(chunk.data)
    assert received == size
