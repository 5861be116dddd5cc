"""sandbox.files: every public call of the official SDK against the agent."""

import asyncio
import hashlib
import io
import os
import time

import pytest
from e2b import (
    AsyncSandbox,
    FileType,
    InvalidArgumentException,
    NotFoundException,
)
from e2b.sandbox.filesystem.watch_handle import FilesystemEventType


def test_write_and_read_text(sandbox, folder):
    info = sandbox.files.write(f"{folder}/hello.txt", "héllo, wörld\n")
    assert info.path == f"{folder}/hello.txt"
    assert info.name == "hello.txt"
    assert info.type == FileType.FILE
    assert sandbox.files.read(f"{folder}/hello.txt") == "héllo, wörld\n"


def test_write_and_read_bytes(sandbox, folder):
    data = bytes(range(256)) * 64
    sandbox.files.write(f"{folder}/all.bin", data)
    assert bytes(sandbox.files.read(f"{folder}/all.bin", format="bytes")) == data


def test_write_creates_parent_folders(sandbox, folder):
    sandbox.files.write(f"{folder}/a/b/c.txt", "deep")
    assert sandbox.files.read(f"{folder}/a/b/c.txt") == "deep"


def test_write_overwrites(sandbox, folder):
    sandbox.files.write(f"{folder}/f", "a longer first version")
    sandbox.files.write(f"{folder}/f", "short")
    assert sandbox.files.read(f"{folder}/f") == "short"


def test_write_empty_file(sandbox, folder):
    sandbox.files.write(f"{folder}/empty", b"")
    assert sandbox.files.read(f"{folder}/empty", format="bytes") == bytearray()
    assert sandbox.files.get_info(f"{folder}/empty").size == 0


@pytest.mark.parametrize("octet_stream", [False, True])
def test_write_file_object_and_chunks(sandbox, folder, octet_stream):
    sandbox.files.write(
        f"{folder}/obj", io.BytesIO(b"from a file object"), use_octet_stream=octet_stream
    )
    assert sandbox.files.read(f"{folder}/obj") == "from a file object"
    sandbox.files.write(f"{folder}/chunks", iter([b"one ", b"two ", b"three"]))
    assert sandbox.files.read(f"{folder}/chunks") == "one two three"


def test_write_files_many_at_once(sandbox, folder):
    infos = sandbox.files.write_files(
        [{"path": f"{folder}/m{i}.txt", "data": f"file {i}"} for i in range(5)]
    )
    assert sorted(i.path for i in infos) == [f"{folder}/m{i}.txt" for i in range(5)]
    for i in range(5):
        assert sandbox.files.read(f"{folder}/m{i}.txt") == f"file {i}"


def test_read_as_stream(sandbox, folder):
    data = os.urandom(3 << 20)
    sandbox.files.write(f"{folder}/s.bin", data)
    with sandbox.files.read(f"{folder}/s.bin", format="stream") as reader:
        received = b"".join(reader)
    assert received == data


@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
def test_50_mib_round_trip_with_checksum(sandbox, folder, gzip):
    # Half random, half repetitive: gzip must carry both kinds of bytes.
    data = os.urandom(25 << 20) + bytes(range(256)) * ((25 << 20) // 256)
    assert len(data) == 50 << 20
    path = f"{folder}/big.bin"
    sandbox.files.write(path, io.BytesIO(data), gzip=gzip)
    assert sandbox.files.get_info(path).size == len(data)
    received = sandbox.files.read(path, format="bytes", gzip=gzip)
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()


def test_list(sandbox, folder):
    sandbox.files.write(f"{folder}/file.txt", "x")
    sandbox.files.make_dir(f"{folder}/sub")
    sandbox.files.write(f"{folder}/sub/inner.txt", "y")
    entries = {e.name: e for e in sandbox.files.list(folder)}
    assert set(entries) == {"file.txt", "sub"}
    assert entries["file.txt"].type == FileType.FILE
    assert entries["file.txt"].path == f"{folder}/file.txt"
    assert entries["file.txt"].size == 1
    assert entries["sub"].type == FileType.DIR
    deep = {e.path for e in sandbox.files.list(folder, depth=2)}
    assert f"{folder}/sub/inner.txt" in deep


def test_list_refuses_depth_zero(sandbox, folder):
    with pytest.raises(InvalidArgumentException):
        sandbox.files.list(folder, depth=0)


def test_exists(sandbox, folder):
    sandbox.files.write(f"{folder}/here", "x")
    assert sandbox.files.exists(f"{folder}/here")
    assert sandbox.files.exists(folder)
    assert not sandbox.files.exists(f"{folder}/absent")


def test_get_info_of_a_file_and_a_folder(sandbox, folder, agent):
    before = time.time()
    sandbox.files.write(f"{folder}/info.txt", "12345")
    os.chmod(os.path.join(agent.root, folder.lstrip("/"), "info.txt"), 0o640)
    info = sandbox.files.get_info(f"{folder}/info.txt")
    assert info.name == "info.txt"
    assert info.type == FileType.FILE
    assert info.path == f"{folder}/info.txt"
    assert info.size == 5
    assert info.mode & 0o777 == 0o640
    assert info.permissions == "-rw-r-----"
    assert info.owner and info.group
    assert abs(info.modified_time.timestamp() - before) < 60
    assert info.symlink_target is None
    directory = sandbox.files.get_info(folder)
    assert directory.type == FileType.DIR
    assert directory.permissions.startswith("d")


def test_get_info_of_a_symlink_target(sandbox, folder, agent):
    sandbox.files.write(f"{folder}/target.txt", "t")
    os.symlink("target.txt", os.path.join(agent.root, folder.lstrip("/"), "link"))
    info = sandbox.files.get_info(f"{folder}/link")
    assert info.symlink_target == f"{folder}/target.txt"


def test_get_info_reports_a_symlink(sandbox, folder, agent):
    sandbox.files.write(f"{folder}/target.txt", "t")
    os.symlink("target.txt", os.path.join(agent.root, folder.lstrip("/"), "link"))
    assert sandbox.files.get_info(f"{folder}/link").type == FileType.SYMLINK


@pytest.mark.parametrize("octet_stream", [False, True])
def test_write_with_metadata(sandbox, folder, agent, octet_stream):
    path = f"{folder}/meta.txt"
    info = sandbox.files.write(
        path, "m", metadata={"Owner": "alice", "Note": "a b"}, use_octet_stream=octet_stream
    )
    assert info.metadata == {"owner": "alice", "note": "a b"}
    assert sandbox.files.get_info(path).metadata == {"owner": "alice", "note": "a b"}
    host = os.path.join(agent.root, path.lstrip("/"))
    assert os.getxattr(host, "user.e2b.owner") == b"alice"
    # Each upload replaces the whole set; one without metadata clears it.
    assert sandbox.files.write(path, "n", metadata={"x": "1"}).metadata == {"x": "1"}
    assert sandbox.files.get_info(path).metadata == {"x": "1"}
    assert sandbox.files.write(path, "o").metadata is None
    assert sandbox.files.get_info(path).metadata is None


def test_write_files_applies_metadata_to_every_file(sandbox, folder):
    infos = sandbox.files.write_files(
        [{"path": f"{folder}/m1", "data": "1"}, {"path": f"{folder}/m2", "data": "2"}],
        metadata={"batch": "7"},
    )
    assert [i.metadata for i in infos] == [{"batch": "7"}, {"batch": "7"}]
    listed = {e.name: e.metadata for e in sandbox.files.list(folder)}
    assert listed == {"m1": {"batch": "7"}, "m2": {"batch": "7"}}


def test_metadata_over_envd_limits_is_invalid_argument(sandbox, folder):
    with pytest.raises(InvalidArgumentException, match="exceeds 246 bytes"):
        sandbox.files.write(f"{folder}/k", "x", metadata={"k" * 247: "v"})
    with pytest.raises(InvalidArgumentException, match="total metadata size 4097 exceeds 4096"):
        sandbox.files.write(f"{folder}/k", "x", metadata={"big": "v" * 4085})
    assert not sandbox.files.exists(f"{folder}/k")


def test_get_info_list_and_rename_show_user_e2b_xattrs(sandbox, folder, agent):
    sandbox.files.write(f"{folder}/x.txt", "x")
    os.setxattr(
        os.path.join(agent.root, folder.lstrip("/"), "x.txt"), "user.e2b.project", b"demo"
    )
    assert sandbox.files.get_info(f"{folder}/x.txt").metadata == {"project": "demo"}
    assert [e.metadata for e in sandbox.files.list(folder)] == [{"project": "demo"}]
    moved = sandbox.files.rename(f"{folder}/x.txt", f"{folder}/y.txt")
    assert moved.metadata == {"project": "demo"}


def test_make_dir(sandbox, folder):
    assert sandbox.files.make_dir(f"{folder}/new/nested") is True
    assert sandbox.files.get_info(f"{folder}/new/nested").type == FileType.DIR
    # Already there: envd answers already_exists, which the SDK reports as False.
    assert sandbox.files.make_dir(f"{folder}/new/nested") is False


def test_rename(sandbox, folder):
    sandbox.files.write(f"{folder}/old.txt", "moving")
    info = sandbox.files.rename(f"{folder}/old.txt", f"{folder}/new.txt")
    assert info.path == f"{folder}/new.txt"
    assert info.name == "new.txt"
    assert info.type == FileType.FILE
    assert not sandbox.files.exists(f"{folder}/old.txt")
    assert sandbox.files.read(f"{folder}/new.txt") == "moving"


def test_rename_missing_source_is_not_found(sandbox, folder):
    with pytest.raises(NotFoundException):
        sandbox.files.rename(f"{folder}/nothing", f"{folder}/else")


def test_remove_file_and_folder(sandbox, folder):
    sandbox.files.write(f"{folder}/gone.txt", "x")
    sandbox.files.write(f"{folder}/tree/a/b.txt", "x")
    sandbox.files.remove(f"{folder}/gone.txt")
    sandbox.files.remove(f"{folder}/tree")
    assert not sandbox.files.exists(f"{folder}/gone.txt")
    assert not sandbox.files.exists(f"{folder}/tree")


def test_missing_paths_are_not_found(sandbox, folder):
    with pytest.raises(NotFoundException):
        sandbox.files.read(f"{folder}/missing.txt")
    with pytest.raises(NotFoundException):
        sandbox.files.get_info(f"{folder}/missing.txt")
    with pytest.raises(NotFoundException):
        sandbox.files.list(f"{folder}/missing")
    with pytest.raises(NotFoundException):
        sandbox.files.watch_dir(f"{folder}/missing")


def test_wrong_kinds_are_invalid_arguments(sandbox, folder):
    sandbox.files.write(f"{folder}/plain.txt", "x")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.list(f"{folder}/plain.txt")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.watch_dir(f"{folder}/plain.txt")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read(folder)


def _wait_for_events(handle, wanted, timeout=10):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += [(e.type, e.name) for e in handle.get_new_events()]
        if all(w in seen for w in wanted):
            return seen
        time.sleep(0.1)
    return seen


def test_watch_dir_events(sandbox, folder):
    handle = sandbox.files.watch_dir(folder)
    try:
        sandbox.files.write(f"{folder}/w.txt", "one")
        sandbox.files.write(f"{folder}/w.txt", "two")
        sandbox.files.rename(f"{folder}/w.txt", f"{folder}/moved.txt")
        sandbox.files.remove(f"{folder}/moved.txt")
        wanted = [
            (FilesystemEventType.CREATE, "w.txt"),
            (FilesystemEventType.WRITE, "w.txt"),
            (FilesystemEventType.RENAME, "w.txt"),
            (FilesystemEventType.REMOVE, "moved.txt"),
        ]
        seen = _wait_for_events(handle, wanted)
        for event in wanted:
            assert event in seen, seen
    finally:
        handle.stop()


def test_watch_dir_recursive(sandbox, folder):
    sandbox.files.make_dir(f"{folder}/sub")
    handle = sandbox.files.watch_dir(folder, recursive=True)
    try:
        sandbox.files.write(f"{folder}/sub/deep.txt", "x")
        wanted = [(FilesystemEventType.CREATE, "sub/deep.txt")]
        seen = _wait_for_events(handle, wanted)
        assert wanted[0] in seen, seen
    finally:
        handle.stop()


def test_watch_dir_streaming_with_the_async_sandbox(sandbox, folder, async_sandbox_environment):
    # The async SDK watches through the WatchDir stream (the sync one polls).
    async def scenario():
        with async_sandbox_environment:
            sbx = await AsyncSandbox.create()
        events = []
        arrived = asyncio.Event()

        def on_event(event):
            events.append((event.type, event.name))
            if (FilesystemEventType.CREATE, "streamed.txt") in events:
                arrived.set()

        handle = await sbx.files.watch_dir(folder, on_event=on_event)
        try:
            await sbx.files.write(f"{folder}/streamed.txt", "x")
            await asyncio.wait_for(arrived.wait(), timeout=10)
        finally:
            await handle.stop()
        return events

    events = asyncio.run(scenario())
    assert (FilesystemEventType.CREATE, "streamed.txt") in events
