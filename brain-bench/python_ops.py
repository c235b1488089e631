"""brain's per-call costs from Python, each beside a floor measured in the same run.

    python brain-bench/python_ops.py [--big-gib 1]

Every figure is the median over batches of calls (per call), on a temporary
store removed at the end. Floors: a Python dict lookup and store (the
cheapest possible mapping), an ``os.open`` + ``os.read`` + ``os.close`` of a
small file (the system calls a first get cannot avoid), and the creation,
write and rename of one (the system calls a set cannot avoid).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_array, make_frame  # noqa: E402

from brain import Brain  # noqa: E402


def per_call(fn: Callable[[], object], calls: int, batches: int = 15) -> float:
    """Median over batches of the time per call, in seconds."""
    results = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - started) / calls)
    return statistics.median(results)


def row(label: str, seconds: float, target: float | None = None, floor: float | None = None) -> str:
    micro = seconds * 1e6
    ratio = f"{seconds / floor:.1f}x floor" if floor else ""
    verdict = "" if target is None else ("met" if seconds <= target else "MISSED")
    goal = "" if target is None else f"<= {target * 1e6:g} µs"
    return f"| {label} | {micro:,.2f} µs | {ratio} | {goal} | {verdict} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-gib", type=float, default=1.0, help="size of the large array (GiB)")
    parser.add_argument("--frame-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="brain-ops-", dir="/dev/shm"))
    try:
        brain = Brain(path=workdir / "store")
        lines = ["| operation | median per call | vs floor | target | |", "|---|---:|---:|---:|---|"]

        model: dict[str, object] = {}
        dict_get = per_call(lambda: model.get("x"), 100_000)
        dict_set = per_call(lambda: model.__setitem__("x", "a short text"), 100_000)
        small = workdir / "small"
        small.write_bytes(b"x" * 100)

        def open_read_close() -> None:
            fd = os.open(small, os.O_RDONLY)
            os.read(fd, 4096)
            os.close(fd)

        syscall_floor = per_call(open_read_close, 20_000)
        lines.append(row("floor: dict lookup", dict_get))
        lines.append(row("floor: os.open + os.read + os.close of 100 B", syscall_floor))

        counter = iter(range(1 << 62))
        target = workdir / "target"

        def create_write_rename() -> None:
            tmp = workdir / f"tmp{next(counter)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            os.write(fd, b"x" * 100)
            os.close(fd)
            os.rename(tmp, target)

        write_floor = per_call(create_write_rename, 5_000)
        lines.append(row("floor: os.open(O_CREAT) + os.write + os.close + os.rename", write_floor))

        brain["x"] = "a short text"
        lines.append(row("brain['x'] of a short str", per_call(lambda: brain["x"], 20_000), 3e-6, syscall_floor))
        lines.append(row("brain['x'] = short str", per_call(lambda: brain.__setitem__("x", "a short text"), 5_000),
                         10e-6, write_floor))
        lines.append(row("floor: dict store", dict_set))

        sizes = {"1 MiB": 1 << 20, "64 MiB": 64 << 20, f"{args.big_gib:g} GiB": int(args.big_gib * (1 << 30))}
        for label, nbytes in sizes.items():
            brain[f"array {label}"] = make_array(nbytes)
            brain[f"array {label}"]  # first get maps it; the rest are cached
            seconds = per_call(lambda n=f"array {label}": brain[n], 5_000)
            target = 15e-6 if label.endswith("GiB") else None
            lines.append(row(f"brain['array'] of a {label} float64 array", seconds, target, syscall_floor))
            brain.forget(f"array {label}")

        frame = make_frame(args.frame_rows)
        brain["frame"] = frame
        del frame
        brain["frame"]
        lines.append(row(f"brain.get(frame, as_arrow=True), {args.frame_rows:,} rows",
                         per_call(lambda: brain.get("frame", as_arrow=True), 200), 100e-6, syscall_floor))
        lines.append(row(f"brain['frame'] as pandas, {args.frame_rows:,} rows",
                         per_call(lambda: brain["frame"], 50), 1e-3, syscall_floor))
        print("\n".join(lines))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
