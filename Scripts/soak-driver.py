#!/usr/bin/env python3
"""The soak test's driver; run it through Scripts/soak (which builds and cleans up after it).

Random operations through a real mount from worker processes, each in a subtree of its own,
against an in-memory model of the tree, while the agent is killed (-9) and restarted on the same
port and root every --restart-every seconds. Afterwards: model == mount == backing folder, a clean
unmount, and the daemon's RSS and open descriptors flat. Prints a short summary; exit 0 on pass.
"""

import argparse
import errno
import hashlib
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request

KiB, MiB = 1024, 1024 * 1024
# The agent's name for a file being replaced (`.NAME.sandbox-agent-XXXXXX`); kill -9 leaves it.
TEMPORARY = ".sandbox-agent-"
SAMPLE_EVERY = 30
# A worker whose operation takes longer than this is reported as hung (--io-timeout is 30 s).
HANG_SECONDS = 120
# Per worker, so the model's bytes stay in memory.
MAX_MODEL_BYTES = 48 * MiB
MAX_FILES, MAX_DIRS = 160, 40
FILE_MODES = [0o644] * 6 + [0o600, 0o755, 0o640, 0o700, 0o444]
DIR_MODES = [0o755] * 6 + [0o700, 0o750, 0o555]


def errno_name(number):
    return errno.errorcode.get(number, str(number))


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Tree snapshots: relative path -> (type, mode, size, content hash or link target, mtime_ns).
# mtime is compared only where the model pins it (the last change to the file was utime).


def scan_entry(path, relative, out, contents=None):
    """Adds `path` (and everything under it) to `out`, files' bytes to `contents`; raises OSError."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        out[relative] = ("l", None, None, os.readlink(path), None)
    elif stat.S_ISDIR(info.st_mode):
        out[relative] = ("d", stat.S_IMODE(info.st_mode), None, None, None)
        for name in sorted(os.listdir(path)):
            scan_entry(os.path.join(path, name), f"{relative}/{name}" if relative else name, out, contents)
    elif stat.S_ISREG(info.st_mode):
        with open(path, "rb") as f:
            data = f.read()
        if contents is not None:
            contents[relative] = bytearray(data)
        out[relative] = ("f", stat.S_IMODE(info.st_mode), len(data), digest(data), info.st_mtime_ns)
    else:
        out[relative] = ("?", stat.S_IFMT(info.st_mode), None, None, None)


def scan_tree(root):
    out = {}
    for name in sorted(os.listdir(root)):
        scan_entry(os.path.join(root, name), name, out)
    return out


def describe(entry):
    if entry is None:
        return "missing"
    kind, mode, size, content, mtime = entry
    if kind == "f":
        return f"file {mode:o} {size} B sha {content}" + (f" mtime {mtime}" if mtime is not None else "")
    if kind == "d":
        return f"dir {mode:o}"
    if kind == "l":
        return f"symlink -> {content}"
    return f"other {mode:o}"


def same(expected, actual):
    if expected is None or actual is None:
        return expected is actual
    if expected[:4] != actual[:4]:
        return False
    return expected[4] is None or expected[4] == actual[4]


# ---------------------------------------------------------------------------------------------
# Workers


class Worker:
    """Random operations in MOUNT/wN against a model; errors re-read the affected paths."""

    def __init__(self, index, mount, backing, seed, stop, heartbeat, current, log_path):
        self.index = index
        self.base = os.path.join(mount, f"w{index}")
        self.backing = os.path.join(backing, f"w{index}")
        self.rng = random.Random(seed * 1000 + index)
        self.stop = stop
        self.heartbeat = heartbeat
        self.current = current
        self.log = open(log_path, "a", buffering=1)
        # relative path -> [kind, mode, bytearray (files) or target (symlinks), pinned mtime_ns,
        # note: when a change to it failed at close(2) (its content was not replaced since)]
        self.model = {"": ["d", 0o755, None, None, None]}
        self.dirty = set()  # paths whose state is unknown (an error, and the mount not readable yet)
        self.ops = {}
        self.errors = {}  # (errno name, operation) -> count
        self.mismatches = []
        self.resynced = 0
        self.counter = 0
        self.last_dirty_retry = 0.0

    # -- helpers

    def say(self, text):
        now = time.time()
        self.log.write(f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d} w{self.index} {text}\n")

    def path(self, relative):
        return os.path.join(self.base, relative) if relative else self.base

    def new_name(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def unknown(self, relative):
        return any(relative == d or relative.startswith(d + "/") for d in self.dirty)

    def blocked(self, relative):
        """Unknown, or holding something unknown (no rename or rmdir of it)."""
        return self.unknown(relative) or any(relative == "" or d.startswith(relative + "/") for d in self.dirty)

    def entries(self, kind, usable=None):
        usable = usable or self.unknown
        return [p for p, e in self.model.items() if e[0] == kind and not usable(p)]

    def pick(self, kind, usable=None):
        choices = self.entries(kind, usable)
        return self.rng.choice(choices) if choices else None

    def children(self, relative):
        prefix = relative + "/" if relative else ""
        return {p[len(prefix):] for p in self.model if p != relative and p.startswith(prefix)
                and "/" not in p[len(prefix):]}

    def model_bytes(self):
        return sum(len(e[2]) for e in self.model.values() if e[0] == "f")

    def size(self):
        r = self.rng.random()
        if r < 0.1:
            return 0
        if r < 0.5:
            return self.rng.randint(1, 4 * KiB)
        if r < 0.85:
            return self.rng.randint(4 * KiB + 1, 256 * KiB)
        return self.rng.randint(256 * KiB + 1, 4 * MiB)

    def data(self, size):
        return self.rng.randbytes(size)

    def move_subtree(self, source, destination):
        moved = {}
        for p in list(self.model):
            if p == source or p.startswith(source + "/"):
                moved[destination + p[len(source):]] = self.model.pop(p)
        self.model.update(moved)

    def drop_subtree(self, relative):
        for p in list(self.model):
            if p == relative or p.startswith(relative + "/"):
                del self.model[p]

    # -- re-reading the mount after an error

    def resync(self, relative):
        """What the mount shows at `relative` becomes the model; unknown if it cannot be read."""
        notes = {p: e[4] for p, e in self.model.items() if (p == relative or p.startswith(relative + "/")) and e[4]}
        self.drop_subtree(relative)
        found, contents = {}, {}
        try:
            try:
                scan_entry(self.path(relative), relative, found, contents)
            except FileNotFoundError:
                pass
        except OSError as error:
            self.dirty.add(relative)
            self.say(f"  re-read {relative}: {error}; unknown for now")
            return False
        self.dirty = {d for d in self.dirty if not (d == relative or d.startswith(relative + "/"))}
        for p, (kind, mode, _, target, _) in found.items():
            self.model[p] = [kind, mode, contents[p] if kind == "f" else target, None, notes.get(p)]
        self.resynced += 1
        self.say(f"  re-read {relative}: {describe(found.get(relative))}")
        return True

    def retry_dirty(self):
        if not self.dirty or time.monotonic() - self.last_dirty_retry < 1:
            return
        self.last_dirty_retry = time.monotonic()
        for relative in sorted(self.dirty, key=len):
            if relative in self.dirty:
                self.resync(relative)

    def mismatch(self, what, relative):
        if relative in self.model and self.model[relative][4]:
            what += f" [after a failed close at {self.model[relative][4]}]"
        if TEMPORARY in what:
            what += " [agent's temporary file]"
        self.mismatches.append(f"w{self.index}/{relative}: {what}")
        found = {}
        try:
            scan_entry(os.path.join(self.backing, relative), relative, found)
        except OSError as error:
            found[relative] = None
            what += f" (backing: {error})"
        self.say(f"MISMATCH {relative}: {what}; backing now: {describe(found.get(relative))}")

    # -- operations: each does its calls, then updates the model; an OSError leaves it to resync

    def op_create(self):
        directory = self.pick("d")
        name = self.new_name("f")
        relative = f"{directory}/{name}" if directory else name
        mode = self.rng.choice(FILE_MODES)
        data = self.data(self.size())
        self.touch(relative)
        self.detail = f"{len(data)} B mode {mode:o}"
        self.write_new(relative, data, mode, os.O_CREAT | os.O_EXCL)
        self.model[relative] = ["f", mode, bytearray(data), None, None]
        return True

    def write_new(self, relative, data, mode, flags):
        self.step = "open"
        fd = os.open(self.path(relative), os.O_WRONLY | flags, mode)
        self.step = "write"
        try:
            self.write_all(fd, data, 0)
        finally:
            self.step = "close"
            os.close(fd)

    @staticmethod
    def write_all(fd, data, offset):
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view[:4 * MiB], offset)
            view, offset = view[written:], offset + written

    def op_overwrite(self):
        relative = self.pick("f")
        if relative is None:
            return None
        data = self.data(self.size())
        self.touch(relative)
        self.detail = f"{len(data)} B"
        self.step = "open"
        fd = os.open(self.path(relative), os.O_WRONLY | os.O_TRUNC)
        self.step = "write"
        try:
            self.write_all(fd, data, 0)
        finally:
            self.step = "close"
            os.close(fd)
        entry = self.model[relative]
        entry[2], entry[3], entry[4] = bytearray(data), None, None
        return True

    def op_append(self):
        relative = self.pick("f")
        if relative is None:
            return None
        data = self.data(self.rng.choice([self.rng.randint(1, 200), self.rng.randint(1, 64 * KiB),
                                          self.rng.randint(1, MiB)]))
        self.touch(relative)
        self.detail = f"{len(data)} B to {len(self.model[relative][2])} B"
        self.step = "open"
        fd = os.open(self.path(relative), os.O_WRONLY | os.O_APPEND)
        self.step = "write"
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            self.step = "close"
            os.close(fd)
        entry = self.model[relative]
        entry[2] += data
        entry[3] = None
        return True

    def op_partial_write(self):
        relative = self.pick("f")
        if relative is None:
            return None
        content = self.model[relative][2]
        # Inside the file, across its end, or past it (a hole); 1 MiB block edges included.
        offset = self.rng.choice([self.rng.randint(0, len(content) + 64 * KiB),
                                  max(0, (len(content) // MiB) * MiB - self.rng.randint(0, 100)),
                                  self.rng.randint(0, max(0, len(content) - 1))])
        data = self.data(self.rng.choice([1, self.rng.randint(1, 4 * KiB), self.rng.randint(1, 300 * KiB)]))
        self.touch(relative)
        self.detail = f"{len(data)} B at {offset} of {len(content)} B"
        self.step = "open"
        fd = os.open(self.path(relative), os.O_WRONLY)
        self.step = "write"
        try:
            self.write_all(fd, data, offset)
        finally:
            self.step = "close"
            os.close(fd)
        if offset > len(content):
            content += bytes(offset - len(content))
        content[offset:offset + len(data)] = data
        self.model[relative][3] = None
        return True

    def op_truncate(self):
        relative = self.pick("f")
        if relative is None:
            return None
        content = self.model[relative][2]
        size = self.rng.choice([0, self.rng.randint(0, len(content)), len(content) + self.rng.randint(1, MiB)])
        self.touch(relative)
        self.detail = f"{len(content)} B to {size} B"
        if self.rng.random() < 0.5:
            self.step = "truncate"
            os.truncate(self.path(relative), size)
        else:
            self.step = "open"
            fd = os.open(self.path(relative), os.O_WRONLY)
            self.step = "ftruncate"
            try:
                os.ftruncate(fd, size)
            finally:
                self.step = "close"
                os.close(fd)
        if size < len(content):
            del content[size:]
        else:
            content += bytes(size - len(content))
        self.model[relative][3] = None
        return True

    def op_rename_file(self):
        source = self.pick("f") if self.rng.random() < 0.8 else self.pick("l")
        if source is None:
            return None
        targets = [p for p in self.entries("f") if p != source]
        if targets and self.rng.random() < 0.3:
            destination = self.rng.choice(targets)  # replaces a file, as an atomic save does
        else:
            directory = self.pick("d")
            destination = f"{directory}/{self.new_name('r')}" if directory else self.new_name("r")
        self.touch(source, destination)
        os.rename(self.path(source), self.path(destination))
        self.model[destination] = self.model.pop(source)
        return True

    def op_rename_dir(self):
        source = self.pick("d", self.blocked)
        if not source:
            return None
        parents = [p for p in self.entries("d") if p != source and not p.startswith(source + "/")]
        directory = self.rng.choice(parents)
        destination = f"{directory}/{self.new_name('D')}" if directory else self.new_name("D")
        self.touch(source, destination)
        os.rename(self.path(source), self.path(destination))
        self.move_subtree(source, destination)
        return True

    def op_unlink(self):
        relative = self.pick("f") if self.rng.random() < 0.85 else self.pick("l")
        if relative is None:
            return None
        self.touch(relative)
        os.unlink(self.path(relative))
        del self.model[relative]
        return True

    def op_mkdir(self):
        directory = self.pick("d")
        relative = f"{directory}/{self.new_name('d')}" if directory else self.new_name("d")
        mode = self.rng.choice(DIR_MODES)
        self.touch(relative)
        self.detail = f"{mode:o}"
        os.mkdir(self.path(relative), mode)
        self.model[relative] = ["d", mode, None, None, None]
        return True

    def op_rmdir(self):
        empty = [p for p in self.entries("d", self.blocked) if p and not self.children(p)]
        if not empty:
            return None
        relative = self.rng.choice(empty)
        self.touch(relative)
        os.rmdir(self.path(relative))
        del self.model[relative]
        return True

    def op_chmod(self):
        kind = "f" if self.rng.random() < 0.7 else "d"
        relative = self.pick(kind)
        if relative is None or (kind == "d" and relative == ""):
            return None
        mode = self.rng.choice(FILE_MODES if kind == "f" else DIR_MODES)
        self.touch(relative)
        self.detail = f"{mode:o}"
        os.chmod(self.path(relative), mode)
        self.model[relative][1] = mode
        return True

    def op_symlink(self):
        directory = self.pick("d")
        relative = f"{directory}/{self.new_name('s')}" if directory else self.new_name("s")
        siblings = sorted(self.children(directory))
        target = self.rng.choice([self.rng.choice(siblings) if siblings else "missing", "../elsewhere/x",
                                  "/nonexistent/" + "n" * self.rng.randint(1, 100), "./a b c"])
        self.touch(relative)
        self.detail = f"-> {target}"
        os.symlink(target, self.path(relative))
        self.model[relative] = ["l", None, target, None, None]
        return True

    def op_utime(self):
        relative = self.pick("f")
        if relative is None:
            return None
        now = time.time_ns()
        mtime = now - self.rng.randint(0, 365 * 86400) * 10**9 + self.rng.randint(0, 10**9 - 1)
        self.touch(relative)
        self.detail = f"mtime {mtime}"
        os.utime(self.path(relative), ns=(now, mtime))
        self.model[relative][3] = mtime
        return True

    # -- checks (no change; a difference is a mismatch)

    def op_read(self):
        relative = self.pick("f")
        if relative is None:
            return None
        content = self.model[relative][2]
        with open(self.path(relative), "rb") as f:
            if len(content) > 64 * KiB and self.rng.random() < 0.5:
                offset = self.rng.randint(0, len(content) - 1)
                length = self.rng.randint(1, 512 * KiB)
                f.seek(offset)
                got, want = f.read(length), bytes(content[offset:offset + length])
            else:
                offset = 0
                got, want = f.read(), bytes(content)
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            self.mismatch(f"read at {offset}: {len(got)} B sha {digest(got)}, expected {len(want)} B sha "
                          f"{digest(want)} (first difference at {offset + first})", relative)
            # Recorded; from here on the model follows what the mount shows.
            self.resync(relative)
        return True

    def op_list(self):
        relative = self.pick("d")
        if relative is None:
            return None
        prefix = relative + "/" if relative else ""
        names = set(os.listdir(self.path(relative)))
        got = {name for name in names if not self.unknown(prefix + name)}
        want = self.children(relative)
        if got != want:
            self.mismatch(f"listing: extra {sorted(got - want)}, missing {sorted(want - got)}", relative)
            # Recorded; from here on the model follows what the mount shows.
            self.resync(relative)
        return True

    def op_stat(self):
        choices = [p for p in self.model if p and not self.unknown(p)]
        if not choices:
            return None
        relative = self.rng.choice(choices)
        kind, mode, payload, mtime, _ = self.model[relative]
        info = os.lstat(self.path(relative))
        got_kind = "l" if stat.S_ISLNK(info.st_mode) else "d" if stat.S_ISDIR(info.st_mode) else \
            "f" if stat.S_ISREG(info.st_mode) else "?"
        problems = []
        if got_kind != kind:
            problems.append(f"type {got_kind}, expected {kind}")
        elif kind != "l" and stat.S_IMODE(info.st_mode) != mode:
            problems.append(f"mode {stat.S_IMODE(info.st_mode):o}, expected {mode:o}")
        if got_kind == kind == "f" and info.st_size != len(payload):
            problems.append(f"size {info.st_size}, expected {len(payload)}")
        if got_kind == kind == "f" and mtime is not None and info.st_mtime_ns != mtime:
            problems.append(f"mtime {info.st_mtime_ns}, expected {mtime}")
        if got_kind == kind == "l" and info.st_size != len(os.fsencode(payload)):
            problems.append(f"symlink size {info.st_size}, expected {len(os.fsencode(payload))}")
        if problems:
            self.mismatch("stat: " + ", ".join(problems), relative)
            # Recorded; from here on the model follows what the mount shows.
            self.resync(relative)
        return True

    def choose(self):
        files = sum(1 for e in self.model.values() if e[0] == "f")
        dirs = sum(1 for e in self.model.values() if e[0] == "d")
        full = files >= MAX_FILES or self.model_bytes() >= MAX_MODEL_BYTES
        weights = {
            "create": 0 if full else 14, "overwrite": 6, "append": 0 if full else 8, "partial_write": 8,
            "truncate": 5, "rename_file": 6, "rename_dir": 2, "unlink": 16 if full else 6,
            "mkdir": 0 if dirs >= MAX_DIRS else 5, "rmdir": 3, "chmod": 4, "symlink": 4, "utime": 4,
            "read": 16, "list": 5, "stat": 5,
        }
        names = list(weights)
        return self.rng.choices(names, [weights[n] for n in names])[0]

    def run(self):
        os.umask(0)
        while True:
            try:
                os.mkdir(self.base, 0o755)
                break
            except OSError as error:
                self.say(f"mkdir {self.base}: {error}")
                time.sleep(1)
        while not self.stop.is_set():
            self.retry_dirty()
            name = self.choose()
            self.heartbeat.value = time.monotonic()
            self.current.value = name.encode()[:200]
            self.touching, self.step, self.detail = [], name, ""
            try:
                done = getattr(self, "op_" + name)()
            except OSError as error:
                key = (errno_name(error.errno), name)
                self.errors[key] = self.errors.get(key, 0) + 1
                self.say(f"{name} {self.touching} at {self.step}: {error}")
                if self.step == "close":
                    for relative in self.touching:
                        if relative in self.model:
                            self.model[relative][4] = time.strftime("%H:%M:%S")
                for relative in self.touching:
                    self.resync(relative)
                continue
            if done:
                self.ops[name] = self.ops.get(name, 0) + 1
                if self.touching:
                    self.say(f"ok {name} {' '.join(self.touching)} {self.detail}")
        self.heartbeat.value = 0.0

    def touch(self, *paths):
        """The paths an operation changes: re-read from the mount if it fails."""
        self.touching = list(paths)
        self.current.value = f"{self.current.value.decode()} {' '.join(paths)}".encode()[:200]

    def export(self):
        model = {}
        for relative, (kind, mode, payload, mtime, _) in self.model.items():
            full = f"w{self.index}/{relative}" if relative else f"w{self.index}"
            if kind == "f":
                model[full] = ("f", mode, len(payload), digest(bytes(payload)), mtime)
            elif kind == "d":
                model[full] = ("d", mode, None, None, None)
            else:
                model[full] = ("l", None, None, payload, None)
        return {"model": model, "dirty": sorted(f"w{self.index}/{d}" if d else f"w{self.index}" for d in self.dirty),
                "failed_close": sorted(f"w{self.index}/{p}" for p, e in self.model.items() if e[4]),
                "ops": self.ops, "errors": self.errors, "mismatches": self.mismatches, "resynced": self.resynced}


def worker_main(index, mount, backing, seed, stop, heartbeat, current, log_path, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops workers itself
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker = Worker(index, mount, backing, seed, stop, heartbeat, current, log_path)
    try:
        worker.run()
    except BaseException as error:  # a bug in the driver: report it rather than hang the run
        worker.say(f"worker failed: {error!r}")
        worker.mismatches.append(f"w{index}: worker failed: {error!r}")
    results.put((index, worker.export()))


# ---------------------------------------------------------------------------------------------
# The agent, the mount, samples


class Agent:
    """sandbox-agent on a fixed port, killed with -9 and started again on the same port and root."""

    def __init__(self, binary, root, port, log_path):
        self.binary, self.root, self.port, self.log_path = binary, root, port, log_path
        self.process = None
        self.starts = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        with open(self.log_path, "a") as log:
            log.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.process = subprocess.Popen([self.binary, "--root", self.root, "--listen", f"127.0.0.1:{self.port}"],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sandbox-agent exited with {self.process.returncode} (see {self.log_path})")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sandbox-agent did not answer on {self.url} within {timeout} s")

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def alive(self):
        return self.process is not None and self.process.poll() is None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_mount(mountpoint, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            return
        if process.poll() is not None:
            raise RuntimeError(f"sandbox-mount exited with {process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{mountpoint} did not mount within {timeout} s")


def is_mounted(mountpoint):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mountpoint for line in f)


def unmount(mountpoint):
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", mountpoint], stderr=subprocess.DEVNULL)
    if is_mounted(mountpoint):
        time.sleep(1)
        subprocess.run(["fusermount3", "-uz", mountpoint], stderr=subprocess.DEVNULL)


def sample(pid):
    """(RSS in KiB, open descriptors) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def compare(expected, actual, expected_name, actual_name, limit=20):
    """Lines describing each path where two snapshots differ."""
    lines = []
    for path in sorted(set(expected) | set(actual)):
        if not same(expected.get(path), actual.get(path)):
            lines.append(f"{path}: {expected_name} {describe(expected.get(path))}, "
                         f"{actual_name} {describe(actual.get(path))}")
    return lines


def status_json(mount_binary, mountpoint):
    try:
        output = subprocess.run([mount_binary, "status", mountpoint, "--json"], capture_output=True, text=True,
                                timeout=30).stdout
        return json.loads(output)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def mib(kib):
    return f"{kib / 1024:.1f}"


# ---------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args, mount_options):
        self.args = args
        self.mount_options = mount_options
        self.work = args.work
        self.root = os.path.join(self.work, "root")
        self.mountpoint = os.path.join(self.work, "mnt")
        self.state = os.path.join(self.work, "state")
        for folder in (self.root, self.mountpoint, self.state):
            os.makedirs(folder, exist_ok=True)
        self.agent = Agent(os.path.join(args.bin, "sandbox-agent"), self.root, free_port(),
                           os.path.join(self.work, "agent.log"))
        self.mount_binary = os.path.join(args.bin, "sandbox-mount")
        self.mount_process = None
        self.workers = []
        self.rng = random.Random(args.seed)
        self.samples = []  # (seconds since start, RSS KiB, fds)
        self.outages = []  # seconds down, 0 for an immediate restart
        self.hangs = []
        self.failures = []
        self.started = None

    def note(self, text):
        with open(os.path.join(self.work, "driver.log"), "a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def record_pids(self):
        # For Scripts/soak's trap, should this process die without cleaning up.
        pids = [p.pid for p in (self.agent.process, self.mount_process) if p]
        with open(os.path.join(self.work, "pids"), "w") as f:
            f.write(" ".join(map(str, pids)) + "\n")

    def mount(self):
        command = [self.mount_binary, self.agent.url, self.mountpoint, "-f", "--state-dir", self.state,
                   *self.mount_options]
        self.note("mount: " + " ".join(command))
        with open(os.path.join(self.work, "mount.log"), "a") as log:
            self.mount_process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True)
        self.record_pids()
        wait_for_mount(self.mountpoint, self.mount_process)

    def restart_agent(self):
        outage = 0.0 if self.rng.random() < 0.4 else self.rng.uniform(1, 5)
        self.note(f"agent: kill -9, {outage:.1f} s down")
        self.agent.kill()
        time.sleep(outage)
        self.agent.start()
        self.record_pids()
        self.outages.append(outage)

    def take_sample(self):
        try:
            rss, fds = sample(self.mount_process.pid)
        except (OSError, StopIteration):
            return
        elapsed = time.monotonic() - self.started
        self.samples.append((elapsed, rss, fds))
        self.note(f"sample at {elapsed:.0f} s: RSS {mib(rss)} MiB, {fds} fds")

    def check_workers(self):
        now = time.monotonic()
        for index, (process, heartbeat, current) in enumerate(self.workers):
            beat = heartbeat.value
            if beat and now - beat > HANG_SECONDS:
                what = current.value.decode(errors="replace")
                if not any(h[0] == index and h[2] == beat for h in self.hangs):
                    try:
                        with open(f"/proc/{process.pid}/stack") as f:
                            stack = f.read().strip().replace("\n", " | ")
                    except OSError:
                        stack = "?"
                    self.hangs.append((index, what, beat))
                    self.note(f"HANG w{index}: '{what}' for {now - beat:.0f} s; kernel stack: {stack}")

    def run_workers(self, seconds):
        context = multiprocessing.get_context("fork")
        self.stop = context.Event()
        self.results = context.Queue()
        for index in range(self.args.workers):
            heartbeat, current = context.Value("d", 0.0), context.Array("c", 256)
            process = context.Process(target=worker_main, args=(
                index, self.mountpoint, self.root, self.args.seed, self.stop, heartbeat, current,
                os.path.join(self.work, "driver.log"), self.results), daemon=True)
            process.start()
            self.workers.append((process, heartbeat, current))
        deadline = self.started + seconds
        next_restart = time.monotonic() + self.args.restart_every
        next_sample = time.monotonic() + SAMPLE_EVERY
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = time.monotonic()
            if now >= next_restart:
                self.restart_agent()
                next_restart = time.monotonic() + self.args.restart_every
            if now >= next_sample:
                self.take_sample()
                next_sample += SAMPLE_EVERY
            self.check_workers()
            if self.mount_process.poll() is not None:
                raise RuntimeError(f"sandbox-mount exited with {self.mount_process.returncode} during the run")
            if not any(p.is_alive() for p, _, _ in self.workers):
                break
        self.stop.set()
        exports = {}
        deadline = time.monotonic() + HANG_SECONDS + 60
        while len(exports) < len(self.workers) and time.monotonic() < deadline:
            try:
                index, export = self.results.get(timeout=1)
                exports[index] = export
            except queue.Empty:
                self.check_workers()
        for index, (process, _, current) in enumerate(self.workers):
            if index not in exports:
                self.failures.append(f"worker w{index} did not stop (in '{current.value.decode()}')")
                process.kill()
            process.join(10)
        return exports

    def main(self):
        args = self.args
        self.agent.start()
        self.record_pids()
        self.mount()
        self.started = time.monotonic()
        self.take_sample()
        exports = self.run_workers(args.minutes * 60)
        ops_seconds = time.monotonic() - self.started
        if not self.agent.alive():
            self.agent.start()

        model, ops, errors, mismatches, resynced, dirty, failed_close = {}, {}, {}, [], 0, [], set()
        for index in sorted(exports):
            export = exports[index]
            model.update(export["model"])
            for name, count in export["ops"].items():
                ops[name] = ops.get(name, 0) + count
            for key, count in export["errors"].items():
                errors[key] = errors.get(key, 0) + count
            mismatches += export["mismatches"]
            resynced += export["resynced"]
            dirty += export["dirty"]
            failed_close.update(export["failed_close"])
        # What stayed unknown (the agent was down): what the mount shows now, the agent up.
        for relative in dirty:
            for path in [p for p in model if p == relative or p.startswith(relative + "/")]:
                del model[path]
            found = {}
            try:
                scan_entry(os.path.join(self.mountpoint, relative), relative, found)
            except FileNotFoundError:
                pass
            model.update({p: e[:4] + (None,) for p, e in found.items()})
            resynced += 1

        sync_started = time.monotonic()
        sync = subprocess.run([self.mount_binary, "sync", self.mountpoint], capture_output=True, text=True,
                              timeout=900)
        sync_seconds = time.monotonic() - sync_started
        if sync.returncode != 0:
            self.failures.append(f"sandbox-mount sync exited {sync.returncode}: {(sync.stdout + sync.stderr).strip()}")
        status = status_json(self.mount_binary, self.mountpoint)
        self.note(f"status: {json.dumps(status)}")
        for key in ("pendingChanges", "failures", "conflicts"):
            if status.get(key):
                self.failures.append(f"status after sync: {key} {status[key]}")
        self.take_sample()

        # model == mount == backing folder
        seen = scan_tree(self.mountpoint)
        backing = scan_tree(self.root)
        differences = [line + (" [after a failed close]" if line.split(": ", 1)[0] in failed_close else "")
                       + (" [agent's temporary file]" if TEMPORARY in line.split(": ", 1)[0] else "")
                       for line in compare(model, seen, "model", "mount")] + compare(seen, backing, "mount", "backing")
        for line in mismatches + differences:
            self.note("MISMATCH " + line)

        unmount_started = time.monotonic()
        unmount_run = subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True, text=True)
        try:
            exit_code = self.mount_process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            exit_code = None
        unmount_seconds = time.monotonic() - unmount_started
        with open(os.path.join(self.work, "mount.log"), errors="replace") as f:
            left = [line.strip() for line in f if "did not reach the sandbox" in line or "still busy" in line]
        clean = unmount_run.returncode == 0 and exit_code == 0 and not is_mounted(self.mountpoint) and not left
        if not clean:
            self.failures.append(f"unmount: fusermount3 {unmount_run.returncode} {unmount_run.stderr.strip()}, "
                                 f"daemon exit {exit_code}, still mounted {is_mounted(self.mountpoint)}"
                                 + (f", log: {left[-1]}" if left else ""))
        after = scan_tree(self.root)
        differences += compare(model, after, "model", "backing after unmount")

        # Flat: the last sample against the one at the 2-minute mark (20% into a short run).
        baseline_at = min(120, 0.2 * ops_seconds)
        baseline = next((s for s in self.samples if s[0] >= baseline_at), self.samples[-1])
        last = self.samples[-1]
        rss_limit = baseline[1] + max(baseline[1] * 0.25, 32 * 1024)
        fd_limit = baseline[2] + 16
        rss_flat, fds_flat = last[1] <= rss_limit, last[2] <= fd_limit

        outage_total = sum(self.outages)
        immediate = sum(1 for o in self.outages if o == 0)
        passed = (not mismatches and not differences and not self.failures and not self.hangs
                  and rss_flat and fds_flat)
        build = "release" if "/release" in os.path.realpath(args.bin) else "debug"
        lines = [
            f"soak: {ops_seconds / 60:.1f} min of operations, seed {args.seed}, {args.workers} workers, "
            f"{build} build, mount options: {' '.join(self.mount_options) or '(defaults: write-back on)'}",
            f"ops: {sum(ops.values())} ({', '.join(f'{k} {v}' for k, v in sorted(ops.items(), key=lambda i: -i[1]))})",
            "errors: " + (", ".join(
                f"{name} {sum(c for (n, _), c in errors.items() if n == name)} ("
                + ", ".join(f"{op} {c}" for (n, op), c in sorted(errors.items()) if n == name) + ")"
                for name in sorted({n for n, _ in errors})) or "none")
            + f"; paths re-read from the mount after an error: {resynced}",
            f"agent restarts: {len(self.outages)} every {args.restart_every} s ({immediate} immediate, "
            f"{len(self.outages) - immediate} after 1-5 s; {outage_total:.0f} s down in total)",
            f"mismatches: {len(mismatches) + len(differences)} ("
            f"{sum('[after a failed close' in line for line in mismatches + differences)} after a failed close, "
            f"{sum(TEMPORARY in line for line in mismatches + differences)} the agent's temporary files; "
            f"during the run {len(mismatches)}; at the end, model "
            f"vs mount vs backing: {len(differences)} of {len(model)} entries, "
            f"{sum(e[2] for e in model.values() if e[0] == 'f') / MiB:.0f} MiB)",
            f"sync: exit {sync.returncode}, {sync_seconds:.1f} s; status: {status.get('pendingChanges', '?')} pending, "
            f"{len(status.get('failures', []))} failures, {len(status.get('conflicts', []))} conflicts",
            f"unmount: {'clean' if clean else 'NOT clean'} (daemon exit {exit_code}, {unmount_seconds:.1f} s)",
            f"RSS MiB: {mib(baseline[1])} at {baseline[0]:.0f} s -> {mib(last[1])} at the end (max "
            f"{mib(max(s[1] for s in self.samples))}, limit {mib(rss_limit)}): {'flat' if rss_flat else 'GREW'}",
            f"fds: {baseline[2]} at {baseline[0]:.0f} s -> {last[2]} at the end (max {max(s[2] for s in self.samples)}, "
            f"limit {fd_limit}): {'flat' if fds_flat else 'GREW'}",
            f"samples (s: RSS MiB/fds): " + " ".join(f"{s[0]:.0f}:{mib(s[1])}/{s[2]}" for s in self.samples),
            "hangs: " + ("; ".join(f"w{i} in '{w}'" for i, w, _ in self.hangs) or "none"),
        ]
        for line in (mismatches + differences)[:20]:
            lines.append(f"  MISMATCH {line}")
        for line in self.failures:
            lines.append(f"  FAILURE {line}")
        lines.append("PASS" if passed else f"FAIL (logs in {self.work})")
        print("\n".join(lines), flush=True)
        return passed

    def cleanup(self):
        if getattr(self, "stop", None) is not None:
            self.stop.set()
        for process, _, _ in self.workers:
            if process.is_alive():
                process.kill()
                process.join(5)
        unmount(self.mountpoint)
        if self.mount_process and self.mount_process.poll() is None:
            try:
                self.mount_process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.mount_process.kill()
                self.mount_process.wait()
        self.agent.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--restart-every", type=float, default=30, metavar="S")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bin", required=True, help="folder of sandbox-agent and sandbox-mount")
    parser.add_argument("--work", required=True, help="an empty work folder")
    args, mount_options = parser.parse_known_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)

    def terminated(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    soak = Soak(args, mount_options)
    try:
        passed = soak.main()
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        passed = False
    except Exception as error:
        print(f"soak: {error}", file=sys.stderr)
        print(f"FAIL (logs in {args.work})")
        passed = False
    finally:
        soak.cleanup()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
