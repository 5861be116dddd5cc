"""read_file / write_file: unary under the cap, the SDK's StreamExec fallbacks over it, and the
file errors as the SDK classifies them (ErrorInfo reasons, not "sandbox not found")."""

import os

import pytest
from cwsandbox.exceptions import SandboxFileError, SandboxNotFoundError

from conftest import CAP

BINARY = bytes(range(256)) * 64 + b"\x00\r\n\xff"


def host_read(path):
    with open(path, "rb") as f:
        return f.read()


def test_small_binary_round_trip(sandbox, folder):
    path = os.path.join(folder, "small.bin")
    sandbox.write_file(path, BINARY).result()
    assert host_read(path) == BINARY
    assert sandbox.read_file(path).result() == BINARY


def test_empty_file(sandbox, folder):
    path = os.path.join(folder, "empty")
    sandbox.write_file(path, b"").result()
    assert os.path.getsize(path) == 0
    assert sandbox.read_file(path).result() == b""


def test_overwrite_truncates(sandbox, folder):
    path = os.path.join(folder, "over")
    sandbox.write_file(path, b"a much longer first version").result()
    sandbox.write_file(path, b"short").result()
    assert host_read(path) == b"short"


def test_read_over_cap_falls_back_to_stream(sandbox, folder):
    # The agent answers CWSANDBOX_FILE_TOO_LARGE with size_bytes; the SDK then runs `cat`.
    data = os.urandom(3 * CAP + 12345)
    path = os.path.join(folder, "big-read")
    with open(path, "wb") as f:
        f.write(data)
    assert sandbox.read_file(path).result() == data


def test_write_over_cap_falls_back_to_stream(sandbox, folder):
    # Past the cap WriteFile refuses; the SDK streams the bytes into `head -c N > path`.
    data = os.urandom(2 * CAP + 777) + b"\x00" * 1000
    path = os.path.join(folder, "big-write")
    sandbox.write_file(path, data).result()
    assert host_read(path) == data


def test_too_large_error_carries_sizes(sandbox, folder):
    # The SDK falls back only with the agent's size_bytes, and caches its max_size_bytes.
    path = os.path.join(folder, "cap-probe")
    with open(path, "wb") as f:
        f.write(b"x" * (CAP + 1))
    assert sandbox.read_file(path).result() == b"x" * (CAP + 1)
    assert sandbox._observed_file_op_cap_bytes == CAP


def test_exactly_at_cap_is_unary(sandbox, folder):
    data = os.urandom(CAP)
    path = os.path.join(folder, "at-cap")
    sandbox.write_file(path, data).result()
    assert sandbox.read_file(path).result() == data
    assert sandbox._observed_file_op_cap_bytes in (None, CAP)


def test_missing_file_is_file_not_found(sandbox, folder):
    with pytest.raises(SandboxFileError) as caught:
        sandbox.read_file(os.path.join(folder, "missing")).result()
    assert not isinstance(caught.value, SandboxNotFoundError)
    assert caught.value.reason == "CWSANDBOX_FILE_NOT_FOUND"


def test_write_into_missing_folder_is_file_not_found(sandbox, folder):
    with pytest.raises(SandboxFileError) as caught:
        sandbox.write_file(os.path.join(folder, "no", "such", "f"), b"x").result()
    assert caught.value.reason == "CWSANDBOX_FILE_NOT_FOUND"


def test_read_directory_is_is_directory(sandbox, folder):
    with pytest.raises(SandboxFileError) as caught:
        sandbox.read_file(folder).result()
    assert caught.value.reason == "CWSANDBOX_FILE_IS_DIRECTORY"


def test_write_directory_is_is_directory(sandbox, folder):
    os.mkdir(os.path.join(folder, "d"))
    with pytest.raises(SandboxFileError) as caught:
        sandbox.write_file(os.path.join(folder, "d"), b"x").result()
    assert caught.value.reason == "CWSANDBOX_FILE_IS_DIRECTORY"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_is_permission_denied(sandbox, folder):
    path = os.path.join(folder, "secret")
    with open(path, "wb") as f:
        f.write(b"s")
    os.chmod(path, 0)
    with pytest.raises(SandboxFileError) as caught:
        sandbox.read_file(path).result()
    assert caught.value.reason == "CWSANDBOX_FILE_PERMISSION_DENIED"


def test_write_fallback_checks_the_stored_size(sandbox):
    # /dev/null keeps nothing: the SDK's own `wc -c` check after the streamed write must see 0
    # bytes and report a possibly truncated target (proves the exit code and stderr came back).
    with pytest.raises(SandboxFileError) as caught:
        sandbox.write_file("/dev/null", b"z" * (CAP + 10)).result()
    assert "truncated" in str(caught.value)


def test_streamed_write_and_read(sandbox, folder):
    chunks = [os.urandom(100_000) for _ in range(30)]
    path = os.path.join(folder, "streamed")
    sandbox.write_file_streaming(path, iter(chunks)).result()
    data = b"".join(chunks)
    assert host_read(path) == data
    received = b"".join(sandbox.read_file_streaming(path))
    assert received == data


def test_streamed_read_of_missing_file(sandbox, folder):
    with pytest.raises(SandboxFileError) as caught:
        b"".join(sandbox.read_file_streaming(os.path.join(folder, "gone")))
    assert not isinstance(caught.value, SandboxNotFoundError)


def test_unary_paths_map_under_root(jailed, jailed_agent):
    # A second agent serves a temporary folder: sandbox `/x` is `<root>/x` on this machine.
    jailed.write_file("/mapped.bin", BINARY).result()
    assert host_read(os.path.join(jailed_agent.root, "mapped.bin")) == BINARY
    assert jailed.read_file("/mapped.bin").result() == BINARY
    with pytest.raises(SandboxFileError) as caught:
        jailed.read_file("/etc/hostname-not-inside-root").result()
    assert caught.value.reason == "CWSANDBOX_FILE_NOT_FOUND"


def test_unary_path_cannot_escape_root(jailed):
    with pytest.raises(Exception) as caught:
        jailed.read_file("/../../etc/passwd").result()
    assert "escapes" in str(caught.value)
