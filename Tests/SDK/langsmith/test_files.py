"""Files through the SDK's public API: read, write, stat (exists), ranged reads, ls/glob, grep,
and remove/rename through commands (the SDK has no helpers of its own for those)."""

import os

import pytest
from langsmith.sandbox import ResourceNotFoundError, SandboxOperationError


def exists(sandbox, path):
    try:
        sandbox.stat(path)
        return True
    except ResourceNotFoundError:
        return False


def test_write_and_read_round_trip_binary(sandbox, agent, folder):
    data = bytes(range(256)) * 4096
    sandbox.write(f"{folder}/blob.bin", data)
    assert sandbox.read(f"{folder}/blob.bin") == data
    with open(agent.host_path(f"{folder}/blob.bin"), "rb") as f:
        assert f.read() == data


def test_write_text_to_an_absolute_path_creates_parents(sandbox, agent):
    sandbox.write("/srv/new/dir/hello.txt", "héllo\n")
    assert sandbox.read("/srv/new/dir/hello.txt") == "héllo\n".encode()
    assert os.path.isfile(os.path.join(agent.root, "srv/new/dir/hello.txt"))


def test_reading_a_missing_file_is_not_found(sandbox, folder):
    with pytest.raises(ResourceNotFoundError):
        sandbox.read(f"{folder}/missing.txt")


def test_stat_reports_size_and_validators(sandbox, folder):
    sandbox.write(f"{folder}/f.txt", b"0123456789")
    info = sandbox.stat(f"{folder}/f.txt")
    assert info.size_bytes == 10
    assert info.etag and info.last_modified
    assert exists(sandbox, f"{folder}/f.txt")
    assert not exists(sandbox, f"{folder}/nope.txt")


def test_read_range_resumes_and_polls(sandbox, folder):
    path = f"{folder}/r.bin"
    data = os.urandom(100_000)
    sandbox.write(path, data)
    first = sandbox.read_range(path, start=0, end=999)
    assert first.partial and first.start == 0 and first.total_bytes == 100_000
    assert first.content == data[:1000]
    rest = sandbox.read_range(path, start=first.end, if_range=first.etag)
    assert rest.partial and rest.content == data[1000:]
    tail = sandbox.read_range(path, suffix_bytes=10)
    assert tail.content == data[-10:]
    unchanged = sandbox.read_range(path, start=0, if_none_match=first.etag)
    assert unchanged.unchanged and unchanged.content == b""

    sandbox.write(path, b"rewritten")
    stale = sandbox.read_range(path, start=2, if_range=first.etag)
    assert not stale.partial and stale.content == b"rewritten"
    with pytest.raises(SandboxOperationError):
        sandbox.read_range(path, start=100)


def test_ls_and_glob(sandbox, folder):
    sandbox.write(f"{folder}/a.py", "print(1)\n")
    sandbox.write(f"{folder}/b.txt", "hello")
    sandbox.write(f"{folder}/sub/c.py", "x = 1\n")
    base = f"/home/user/{folder}"
    listing = sandbox.ls(base)
    assert [(m.path, m.is_dir) for m in listing] == [
        (f"{base}/a.py", False),
        (f"{base}/b.txt", False),
        (f"{base}/sub", True),
    ]
    assert listing.matches[1].size_bytes == 5 and listing.matches[1].modified_at
    assert not listing.truncated
    found = sandbox.glob("**/*.py", base)
    assert [m.path for m in found] == [f"{base}/a.py", f"{base}/sub/c.py"]
    capped = sandbox.glob("**", base, limit=2)
    assert len(capped) == 2 and capped.truncated


def test_grep(sandbox, folder):
    sandbox.write(f"{folder}/a.py", "one\nneedle here\n")
    sandbox.write(f"{folder}/deep/b.md", "needle too\n")
    base = f"/home/user/{folder}"
    result = sandbox.grep("needle", base)
    assert sorted((m.path, m.line, m.text) for m in result) == [
        (f"{base}/a.py", 2, "needle here"),
        (f"{base}/deep/b.md", 1, "needle too"),
    ]
    assert [m.path for m in sandbox.grep("needle", base, glob="*.md")] == [f"{base}/deep/b.md"]


def test_remove_and_rename_through_commands(sandbox, agent, folder):
    sandbox.write(f"{folder}/old.txt", "content")
    assert sandbox.run(f"mv {folder}/old.txt {folder}/new.txt").exit_code == 0
    assert not exists(sandbox, f"{folder}/old.txt")
    assert sandbox.read(f"{folder}/new.txt") == b"content"
    assert sandbox.run(f"rm {folder}/new.txt").exit_code == 0
    assert not exists(sandbox, f"{folder}/new.txt")
    assert not os.path.exists(agent.host_path(f"{folder}/new.txt"))


def test_paths_cannot_leave_the_root(sandbox):
    with pytest.raises(Exception):
        sandbox.read("/../../../etc/hostname")


def test_a_wrong_api_key_is_refused(token_agent):
    from langsmith.sandbox import Sandbox, SandboxAuthenticationError, SandboxClient, SandboxConnectionError

    base = token_agent.url + "/api/v2/sandboxes"
    with SandboxClient(api_endpoint=base, api_key="wrong") as wrong:
        with pytest.raises(SandboxAuthenticationError):
            wrong.get_sandbox("box")
        # The dataplane, the WebSocket upgrade included, wants the key too.
        box = Sandbox.from_dict({"name": "box", "dataplane_url": token_agent.url}, client=wrong)
        with pytest.raises(Exception):
            box.read("anything")
        with pytest.raises(SandboxConnectionError):
            box.run("true")
    with SandboxClient(api_endpoint=base, api_key=token_agent.token) as right:
        box = right.get_sandbox("box")
        box.write("k.txt", b"ok")
        assert box.read("k.txt") == b"ok"
        assert box.run("cat k.txt").stdout == "ok"


def test_the_sandbox_context_manager_creates_and_deletes(client):
    with client.sandbox(name="scratch") as box:
        assert box.name == "scratch" and box.status == "ready"
        box.write("/tmp-ctx/f.txt", "x")
        assert box.run("cat /dev/null").exit_code == 0
        assert box.read("/tmp-ctx/f.txt") == b"x"
    assert [b.name for b in client.list_sandboxes()]


def test_large_file_round_trip(sandbox, folder):
    data = os.urandom(20 * 1024 * 1024 + 7)
    sandbox.write(f"{folder}/big.bin", data)
    assert sandbox.stat(f"{folder}/big.bin").size_bytes == len(data)
    assert sandbox.read(f"{folder}/big.bin") == data
