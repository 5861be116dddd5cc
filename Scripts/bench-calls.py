#!/usr/bin/env python3
"""Median latency of single file-system calls in one folder (Scripts/bench's write part).

  Scripts/bench-calls.py DIR [--entries 300] [--samples 200] [--limit S]
DIR gets files f000..f299 unless they are there (not timed). Then, about 300 entries in the folder:
lookup of a missing name (os.stat, a new name each time), stat of an existing file (stat'ed once
before timing, so cached), mkdir, rmdir, rename of a file to a new name, unlink. Each call is timed
alone (time.perf_counter_ns around the one call, Python's own overhead included). Prints JSON:
{"call": {"median_us": 123.4, "samples": 200}, ...}; a call stops sampling after --limit seconds.
"""

import argparse
import json
import os
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--entries", type=int, default=300, help="files the folder holds (created if missing)")
    parser.add_argument("--samples", type=int, default=200, help="calls timed per kind")
    parser.add_argument("--limit", type=float, default=60, help="seconds a kind may take before it stops")
    args = parser.parse_args()
    folder = args.folder
    os.makedirs(folder, exist_ok=True)
    present = set(os.listdir(folder))
    for index in range(args.entries):
        name = f"f{index:03d}"
        if name not in present:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"x\n")
    samples = min(args.samples, args.entries - 1)  # rename takes f000.., stat uses the last file
    tag = f"{os.getpid()}-"
    results = {}

    def measure(call, operation, count=samples, prepare=None):
        """Times `operation(i)` for i in range(count), each call alone."""
        times = []
        deadline = time.monotonic() + args.limit
        if prepare:
            prepare()
        for index in range(count):
            start = time.perf_counter_ns()
            operation(index)
            times.append(time.perf_counter_ns() - start)
            if time.monotonic() > deadline:
                break
        results[call] = {"median_us": statistics.median(times) / 1000 if times else None, "samples": len(times)}
        return len(times)

    def path(name):
        return os.path.join(folder, name)

    def lookup_missing(index):
        try:
            os.stat(path(f"missing-{tag}{index}"))
        except FileNotFoundError:
            return
        raise RuntimeError("a missing name exists")

    existing = path(f"f{args.entries - 1:03d}")
    measure("lookup missing", lookup_missing)
    measure("stat (cached)", lambda index: os.stat(existing), prepare=lambda: os.stat(existing))
    made = measure("mkdir", lambda index: os.mkdir(path(f"m-{tag}{index}")))
    measure("rmdir", lambda index: os.rmdir(path(f"m-{tag}{index}")), count=made)
    renamed = measure("rename", lambda index: os.rename(path(f"f{index:03d}"), path(f"r-{tag}{index}")))
    measure("unlink", lambda index: os.unlink(path(f"r-{tag}{index}")), count=renamed)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
