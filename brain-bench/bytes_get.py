"""A get of a stored ``bytes`` value from Python, beside CPython's own copy.

    python brain-bench/bytes_get.py [--sizes 1 4 16 32 64 128] [--rounds 41]

``brain[name]`` of a ``bytes`` value returns a new ``bytes`` (a ``bytes``
cannot point into the store), so the floor is what CPython pays to make a
``bytes`` of the same size from memory that is already mapped: slicing an
``mmap`` (``PyBytes_FromStringAndSize``: an allocation and one copy). Each
round times one get and one floor copy, alternately, on a store of its own
that is removed at the end; figures are medians over the rounds.

To compare two builds in one sitting, run it alternately with each
(``PYTHONPATH=`` pointing at one of them).
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import remove_scratch, scratch_dir  # noqa: E402

MiB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 32, 64, 128], help="sizes in MiB")
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()

    from brain import Brain

    shm = scratch_dir("brain-bench-bytes-")
    try:
        brain = Brain(path=f"{shm}/store")
        print("| size | brain get | CPython copy (floor) | brain / floor |")
        print("|---:|---:|---:|---:|")
        for size in args.sizes:
            data = np.random.default_rng(size).bytes(size * MiB)
            brain["v"] = data
            source = mmap.mmap(-1, len(data))
            source.write(data)
            del data
            got, floor = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                value = brain["v"]
                got.append(time.perf_counter() - started)
                del value
                started = time.perf_counter()
                value = source[:]
                floor.append(time.perf_counter() - started)
                del value
            source.close()
            g, f = statistics.median(got), statistics.median(floor)
            print(f"| {size} MiB | {g * 1e6:,.0f} µs | {f * 1e6:,.0f} µs | {g / f:.2f} |")
        del brain["v"]
    finally:
        remove_scratch(shm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
