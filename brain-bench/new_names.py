"""Large writes of new names into new pages, against the kernel's own floor.

    python brain-bench/new_names.py [--sizes 1,4,16,64] [--rounds 30]

A Dash app or a worker pool writes many results under names of their own
(a user's filtered frame, a job's output): each is a new name, and its
pages are new, since nothing was replaced whose file could be reused. For
each size, in one run, rounds taking turns:

- ``brain[name] = array``: a numpy array of that many bytes under a name
  not used before (the objects stay until the size is done, as the
  results of an app do, so every write gets new pages);
- the floor: one ``pwrite`` of as many bytes into a new file beside the
  store (the kernel allocating the pages and copying into them; no
  mapping, no checksum, no work of brain's).

Then a name refreshed again and again (``brain["x"] = array`` in a loop),
whose first writes find no file of the name's to reuse: the first four
writes and the median of the rest.

Medians; ratios within the run. The store and the floor's files live in a
scratch directory on /dev/shm, removed at the end (also on an error).
Run on a release build (``make setup-release``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import remove_scratch, scratch_dir  # noqa: E402

from brain import Brain  # noqa: E402

MiB = 1 << 20


def show(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:,.0f} µs"


def new_names(store: Brain, floor_dir: Path, size: int, rounds: int) -> tuple[float, float]:
    """Median seconds of a new name's write and of the floor's ``pwrite``."""
    array = np.random.default_rng(size).integers(0, 255, size, dtype=np.uint8)
    raw = array.tobytes()
    writes, floors = [], []
    for i in range(rounds):
        started = time.perf_counter()
        store[f"new {size} {i}"] = array
        writes.append(time.perf_counter() - started)
        fd = os.open(floor_dir / f"{size}.{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            started = time.perf_counter()
            os.pwrite(fd, raw, 0)
            floors.append(time.perf_counter() - started)
        finally:
            os.close(fd)
    for i in range(rounds):
        del store[f"new {size} {i}"]
        (floor_dir / f"{size}.{i}").unlink()
    return statistics.median(writes), statistics.median(floors)


def refreshed(store: Brain, size: int, rounds: int) -> list[float]:
    """Seconds of each write of one name written ``rounds`` times."""
    array = np.random.default_rng(size + 1).integers(0, 255, size, dtype=np.uint8)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        store["refreshed"] = array
        times.append(time.perf_counter() - started)
    del store["refreshed"]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,16,64", help="sizes in MiB, comma-separated")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(float(s) * MiB) for s in args.sizes.split(",")]
    if args.rounds < 5 or not sizes or min(sizes) < 1:
        parser.error("at least 5 rounds, and sizes above 0")
    root = scratch_dir("brain-new-names-bench-")
    try:
        store = Brain(path=str(root / "store"))
        floor_dir = root / "floor"
        floor_dir.mkdir()
        print("| size | new name, `brain[name] = array` | one `pwrite` into a new file | brain / floor |")
        print("|---:|---:|---:|---:|")
        for size in sizes:
            write, floor = new_names(store, floor_dir, size, args.rounds)
            print(f"| {size / MiB:g} MiB | {show(write)} | {show(floor)} | {write / floor:.2f}x |")
        print("\n| size | 1st write | 2nd | 3rd | 4th | median of the rest |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in sizes:
            times = refreshed(store, size, args.rounds)
            print(f"| {size / MiB:g} MiB | " + " | ".join(show(t) for t in times[:4]) + f" | {show(statistics.median(times[4:]))} |")
        store.close()
    finally:
        remove_scratch(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
