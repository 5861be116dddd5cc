"""The SDK's process API against the agent: `cmd` with the NDJSON stream, status and wait,
logs, stdin (base64 chunks with offsets), kill."""

import os
import subprocess

import pytest
from vercel.sandbox.sync import ProcessSignal


def test_run_with_stdout_stderr_and_exit_code(sandbox):
    result = sandbox.run_process(
        "sh", ["-c", "echo out; echo err >&2; exit 3"], capture_output=True
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_in_the_sandbox_working_directory(sandbox, agent):
    result = sandbox.run_process("sh", ["-c", 'pwd; echo "$SANDBOX_ROOT"'], capture_output=True)
    assert result.stdout.splitlines() == [
        os.path.realpath(agent.host_path("/vercel/sandbox")),
        os.path.realpath(agent.root),
    ]
    assert result.cwd == "/vercel/sandbox"


def test_run_with_cwd_and_env(sandbox, folder):
    result = sandbox.run_process(
        "sh",
        ["-c", 'echo "$GREETING"; ls'],
        cwd=f"/vercel/sandbox/{folder}",
        env={"GREETING": "hi"},
        capture_output=True,
    )
    assert result.stdout == "hi\n"


def test_run_missing_cwd(sandbox):
    from vercel.sandbox.sync import SandboxApiError

    with pytest.raises(SandboxApiError):
        sandbox.run_process("true", cwd="/vercel/sandbox/no/such/dir")


def test_large_and_multibyte_output(sandbox):
    # 2 MiB of a 3-byte character: chunk boundaries fall inside characters.
    result = sandbox.run_process(
        "sh", ["-c", "yes € | head -c 2097152"], capture_output=True
    )
    assert result.returncode == 0
    assert len(result.stdout.encode()) == 2097152
    assert set(result.stdout) <= {"€", "\n"}


def test_stdin_through_input(sandbox):
    result = sandbox.run_process("cat", input=b"from stdin\n", capture_output=True)
    assert (result.returncode, result.stdout) == (0, "from stdin\n")


def test_binary_stdin(sandbox):
    data = bytes(range(256)) * 2048  # over one 512 KiB request
    result = sandbox.run_process("sh", ["-c", "wc -c; "], input=data, capture_output=True)
    assert result.stdout.strip() == str(len(data))


def test_create_process_with_stdin_pipe(sandbox):
    process = sandbox.create_process("sh", ["-c", "tr a-z A-Z"], stdin=subprocess.PIPE)
    process.stdin.write(b"hello ")
    process.stdin.write(b"world")
    process.stdin.close()
    assert process.wait() == 0
    assert process.stdout.read() == "HELLO WORLD"


def test_communicate(sandbox):
    process = sandbox.create_process("sh", ["-c", "cat; echo done >&2"], stdin=subprocess.PIPE)
    stdout, stderr = process.communicate(b"piped")
    assert (stdout, stderr, process.returncode) == ("piped", "done\n", 0)


def test_process_status_and_wait(sandbox):
    process = sandbox.create_process("sh", ["-c", "sleep 0.3; exit 7"])
    assert process.returncode is None
    assert process.wait() == 7
    again = sandbox.get_process(process.id)
    assert again.returncode == 7 and again.name == "sh"
    assert process.id in {p.id for p in sandbox.query_processes()}


def test_logs_of_a_finished_process(sandbox):
    process = sandbox.create_process("sh", ["-c", "echo one; echo two >&2; echo three"])
    process.wait()
    assert process.stdout.read() == "one\nthree\n"
    assert process.stderr.read() == "two\n"


def test_kill(sandbox):
    process = sandbox.create_process("sleep", ["60"])
    process.kill()
    assert process.wait() == 128 + 9


def test_terminate_and_signal(sandbox):
    process = sandbox.create_process("sleep", ["60"])
    process.send_signal(ProcessSignal.SIGINT)
    assert process.wait() == 128 + 2
    process = sandbox.create_process("sleep", ["60"])
    process.terminate()
    assert process.wait() == 128 + 15


def test_kill_after(sandbox):
    result = sandbox.run_process("sleep", ["60"], kill_after=0.5)
    assert result.returncode == 128 + 9

