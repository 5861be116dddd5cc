"""The SDK's file API against the agent: fs/read, fs/write (gzip'ed tar), fs/mkdir, and the
helpers it builds from commands (exists, is_file, is_dir, listdir, remove, rename)."""

import io
import os
import stat

import pytest
from vercel.sandbox.sync import (
    SandboxApiError,
    SandboxFilesystemCommandError,
    SandboxPathNotFoundError,
)


def test_sandbox_lookup(sandbox):
    assert sandbox.name == "sdk-suite"
    assert str(sandbox.status) in ("running", "SandboxStatus.RUNNING")
    assert sandbox.current_session_id


def test_write_and_read_text(sandbox, folder, agent):
    sandbox.fs.write_text(f"{folder}/hello.txt", "hello, vercel\n")
    assert sandbox.fs.read_text(f"{folder}/hello.txt") == "hello, vercel\n"
    with open(agent.host_path(f"{folder}/hello.txt")) as f:
        assert f.read() == "hello, vercel\n"


def test_absolute_paths_and_cwd(sandbox, folder, agent):
    absolute = f"/vercel/sandbox/{folder}/abs.txt"
    sandbox.fs.write_text(absolute, "absolute")
    assert sandbox.fs.read_text("abs.txt", cwd=f"/vercel/sandbox/{folder}") == "absolute"
    # Outside the working directory, still inside the served folder.
    sandbox.fs.write_text("/opt/elsewhere.txt", "root-level")
    with open(os.path.join(agent.root, "opt", "elsewhere.txt")) as f:
        assert f.read() == "root-level"


def test_binary_round_trip(sandbox, folder):
    data = bytes(range(256)) * 4096 + os.urandom(3 << 20)
    sandbox.fs.write_bytes(f"{folder}/blob.bin", data)
    assert sandbox.fs.read_bytes(f"{folder}/blob.bin") == data


def test_empty_file(sandbox, folder, agent):
    sandbox.fs.write_bytes(f"{folder}/empty", b"")
    assert sandbox.fs.read_bytes(f"{folder}/empty") == b""
    assert os.path.getsize(agent.host_path(f"{folder}/empty")) == 0


def test_overwrite_replaces_contents(sandbox, folder):
    sandbox.fs.write_text(f"{folder}/f.txt", "a much longer first version")
    sandbox.fs.write_text(f"{folder}/f.txt", "short")
    assert sandbox.fs.read_text(f"{folder}/f.txt") == "short"


def test_write_modes(sandbox, folder, agent):
    sandbox.fs.write_bytes(f"{folder}/script.sh", b"#!/bin/sh\necho ran\n", mode=0o755)
    sandbox.fs.write_bytes(f"{folder}/secret", b"x", mode=0o600)
    sandbox.fs.write_bytes(f"{folder}/default", b"x")
    modes = {
        name: stat.S_IMODE(os.stat(agent.host_path(f"{folder}/{name}")).st_mode)
        for name in ("script.sh", "secret", "default")
    }
    assert modes == {"script.sh": 0o755, "secret": 0o600, "default": 0o644}
    result = sandbox.run_process("./script.sh", cwd=f"/vercel/sandbox/{folder}", capture_output=True)
    assert (result.returncode, result.stdout) == (0, "ran\n")


def test_write_many_files_in_one_batch(sandbox, folder, agent):
    files = {f"{folder}/many/d{i % 3}/f{i}.txt": f"file {i}".encode() for i in range(30)}
    with sandbox.fs.batch() as batch:
        for path, content in files.items():
            batch.write_bytes(path, content)
    for path, content in files.items():
        assert sandbox.fs.read_bytes(path) == content
        with open(agent.host_path(path), "rb") as f:
            assert f.read() == content


def test_streaming_writer_and_reader(sandbox, folder):
    chunk = os.urandom(256 << 10)
    with sandbox.fs.open(f"{folder}/streamed.bin", "wb") as writer:
        for _ in range(8):
            writer.write(chunk)
    with sandbox.fs.open(f"{folder}/streamed.bin", "rb") as reader:
        assert reader.read() == chunk * 8


def test_write_creates_parents(sandbox, folder, agent):
    sandbox.fs.write_text(f"{folder}/x/y/z/deep.txt", "deep")
    assert os.path.isdir(agent.host_path(f"{folder}/x/y/z"))
    assert sandbox.fs.read_text(f"{folder}/x/y/z/deep.txt") == "deep"


def test_mkdir(sandbox, folder, agent):
    sandbox.fs.mkdir(f"{folder}/a/b/c")
    assert os.path.isdir(agent.host_path(f"{folder}/a/b/c"))
    sandbox.fs.mkdir(f"{folder}/a/b/c")  # recursive: an existing directory is fine
    sandbox.fs.mkdir(f"{folder}/a/flat", recursive=False)
    assert os.path.isdir(agent.host_path(f"{folder}/a/flat"))


def test_mkdir_without_parent_is_missing_path(sandbox, folder):
    with pytest.raises(SandboxPathNotFoundError):
        sandbox.fs.mkdir(f"{folder}/no/such/parent", recursive=False)


def test_read_missing_file(sandbox, folder):
    with pytest.raises(SandboxPathNotFoundError):
        sandbox.fs.read_bytes(f"{folder}/missing.txt")
    with pytest.raises(SandboxPathNotFoundError):
        sandbox.fs.read_text(f"{folder}/no/dir/missing.txt")


def test_read_directory_is_an_error(sandbox, folder):
    with pytest.raises(SandboxApiError) as raised:
        sandbox.fs.read_bytes(folder)
    assert raised.value.status_code == 400


def test_dotdot_cannot_leave_the_root(sandbox):
    with pytest.raises(SandboxApiError) as raised:
        sandbox.fs.read_bytes("../../../../../etc/hostname")
    assert raised.value.status_code == 400


def test_symlink_cannot_leave_the_root(sandbox, folder, agent):
    os.symlink("/etc/hostname", agent.host_path(f"{folder}/escape"))
    # Resolved inside the served folder, where /etc/hostname does not exist.
    with pytest.raises(SandboxPathNotFoundError):
        sandbox.fs.read_bytes(f"{folder}/escape")


def test_exists_is_file_is_dir(sandbox, folder):
    sandbox.fs.write_text(f"{folder}/f", "x")
    sandbox.fs.mkdir(f"{folder}/d")
    assert sandbox.fs.exists(f"{folder}/f") and sandbox.fs.exists(f"{folder}/d")
    assert not sandbox.fs.exists(f"{folder}/nothing")
    assert sandbox.fs.is_file(f"{folder}/f") and not sandbox.fs.is_file(f"{folder}/d")
    assert sandbox.fs.is_dir(f"{folder}/d") and not sandbox.fs.is_dir(f"{folder}/f")


def test_listdir(sandbox, folder, agent):
    sandbox.fs.write_text(f"{folder}/file.txt", "x")
    sandbox.fs.mkdir(f"{folder}/sub")
    os.symlink("file.txt", agent.host_path(f"{folder}/link"))
    entries = {(e.path, e.kind) for e in sandbox.fs.listdir(folder)}
    assert entries == {("file.txt", "file"), ("sub", "directory"), ("link", "symlink")}


def test_listdir_missing(sandbox, folder):
    with pytest.raises(SandboxFilesystemCommandError):
        sandbox.fs.listdir(f"{folder}/missing")


def test_remove(sandbox, folder, agent):
    sandbox.fs.write_text(f"{folder}/gone.txt", "x")
    sandbox.fs.remove(f"{folder}/gone.txt")
    assert not os.path.exists(agent.host_path(f"{folder}/gone.txt"))
    sandbox.fs.write_text(f"{folder}/tree/a/b.txt", "x")
    sandbox.fs.remove(f"{folder}/tree", recursive=True)
    assert not os.path.exists(agent.host_path(f"{folder}/tree"))
    sandbox.fs.remove(f"{folder}/never-there", missing_ok=True)
    with pytest.raises(SandboxFilesystemCommandError):
        sandbox.fs.remove(f"{folder}/never-there")


def test_rename(sandbox, folder, agent):
    sandbox.fs.write_text(f"{folder}/old.txt", "moving")
    sandbox.fs.rename(f"{folder}/old.txt", f"{folder}/new.txt")
    assert not sandbox.fs.exists(f"{folder}/old.txt")
    assert sandbox.fs.read_text(f"{folder}/new.txt") == "moving"
    with pytest.raises(SandboxFilesystemCommandError):
        sandbox.fs.rename(f"{folder}/old.txt", f"{folder}/again.txt")


def test_stat_through_a_command(sandbox, folder):
    # The SDK has no stat call; it (and the mount's exec layer) runs `stat` in the sandbox.
    sandbox.fs.write_bytes(f"{folder}/sized", b"x" * 1234, mode=0o640)
    result = sandbox.run_process(
        "stat", ["-c", "%s %a %F", "sized"], cwd=f"/vercel/sandbox/{folder}", capture_output=True
    )
    assert result.returncode == 0
    assert result.stdout == "1234 640 regular file\n"
