"""brain's dump and restore against Parquet (zstd), on the same data and disk, in one run.

    python brain-bench/persist_compare.py [--rows 10000000] [--array-gib 1] [--repeats 3]

For the benchmark DataFrame and a random float64 array: dump throughput at
zstd levels 1 and 3, restore throughput, dump size; and the same data
written with ``to_parquet(compression="zstd")`` and read back with
``read_parquet``, to the same disk. Temporary stores and files are removed
at the end, even on failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_array, make_frame  # noqa: E402

from brain import Brain  # noqa: E402


def timed(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--array-gib", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shm = Path(tempfile.mkdtemp(prefix="brain-persist-bench-", dir="/dev/shm"))
    disk = Path(tempfile.mkdtemp(prefix="brain-persist-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    lines = [
        "| object | method | time (median) | throughput | size on disk | vs Parquet |",
        "|---|---|---:|---:|---:|---:|",
    ]
    try:
        objects = {
            f"DataFrame {args.rows:,} rows": make_frame(args.rows),
            f"random float64 array {args.array_gib:g} GiB": make_array(int(args.array_gib * (1 << 30))),
        }
        for label, value in objects.items():
            nbytes = (
                int(value.memory_usage(deep=False).sum()) if isinstance(value, pd.DataFrame) else value.nbytes
            )
            frame = value if isinstance(value, pd.DataFrame) else pd.DataFrame({"x": value})
            brain = Brain(path=shm / "store")
            brain["object"] = value
            parquet = disk / "object.parquet"
            parquet_write = timed(lambda: frame.to_parquet(parquet, compression="zstd"), args.repeats)
            parquet_size = parquet.stat().st_size
            parquet_read = timed(lambda: pd.read_parquet(parquet), args.repeats)
            parquet.unlink()

            def row(method: str, seconds: float, size: int | None, parquet_seconds: float) -> None:
                rate = nbytes / seconds / 1e9
                size_text = f"{size / 1e6:,.0f} MB" if size is not None else ""
                ratio = parquet_seconds / seconds
                versus = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
                lines.append(
                    f"| {label} | {method} | {seconds:.3f} s | {rate:.2f} GB/s | {size_text} | {versus} |"
                )

            for level in (1, 3):
                dump = disk / f"dump-{level}"
                seconds = timed(lambda: brain.dump(dump, level=level), args.repeats)
                row(f"brain dump, zstd level {level}", seconds, tree_size(dump), parquet_write)
                restored = Brain(path=shm / "restored")

                def restore(d: Path = dump, target: Brain = restored) -> None:
                    target.restore(d, on_conflict="overwrite")

                seconds = timed(restore, args.repeats)
                row(f"brain restore of the level-{level} dump", seconds, None, parquet_read)
                restored.close()
                shutil.rmtree(shm / "restored")
                shutil.rmtree(dump)
            lines.append(f"| {label} | Parquet write (zstd) | {parquet_write:.3f} s | "
                         f"{nbytes / parquet_write / 1e9:.2f} GB/s | {parquet_size / 1e6:,.0f} MB | 1x |")
            lines.append(f"| {label} | Parquet read | {parquet_read:.3f} s | "
                         f"{nbytes / parquet_read / 1e9:.2f} GB/s |  | 1x |")
            brain.close()
            shutil.rmtree(shm / "store")
        print("\n".join(lines))
        return 0
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
