"""brain's dump and restore against Parquet (zstd), on the same data and disk, in one run.

    python brain-bench/persist_compare.py [--rows 10000000] [--array-gib 1] [--rounds 7]

For the benchmark DataFrame and a random float64 array: brain's dump at
zstd levels 1 and 3 (3 is the default of ``Brain.dump`` and ``brain
dump``), its restore of each dump, and the size of the dumps; against
``to_parquet(compression="zstd")`` and ``read_parquet`` of the same data
on the same disk.

``to_parquet`` runs in this process, which holds the data; brain's dump in
a new process (the store is shared memory, any process can dump it). Reads
each run in a new process, as after a restart: a restore goes
into a new, empty store, so every byte lands in fresh shared-memory pages,
and ``read_parquet`` fills a new process's memory. Only the call itself is
timed (imports and the process's start are not). For context,
``read_parquet`` repeated in this process is measured too: pyarrow's
allocator then reuses memory the previous read freed, which a read after a
restart cannot. With ``--baseline DIR``, another build of the brain
package is measured in the same rounds, beside this one.

The machine this runs on may be shared and its memory may come from a host
that reclaims what the guest frees, so single timings swing widely. The
operations therefore run in rounds, brain's and Parquet's interleaved (the
order alternating from one round to the next), and every round yields its
own ratios: Parquet's time over brain's (above 1: brain is faster). The
table gives the median time and the median ratio over the rounds, each with
its lowest and highest value. Temporary stores and files are removed at the
end, even on failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_array, make_frame  # noqa: E402

from brain import Brain  # noqa: E402

LEVELS = (1, 3)

# Run in a new process: each prints the seconds the call took.
DUMP = """
import sys, time
from brain import Brain
brain = Brain(path=sys.argv[1])
started = time.perf_counter()
brain.dump(sys.argv[2], level=int(sys.argv[3]))
print(time.perf_counter() - started)
"""
RESTORE = """
import sys, time
from brain import Brain
brain = Brain(path=sys.argv[1])
started = time.perf_counter()
brain.restore(sys.argv[2])
print(time.perf_counter() - started)
"""
READ_PARQUET = """
import sys, time
import pandas as pd
import pyarrow.parquet  # noqa: F401 (loaded before the clock starts)
started = time.perf_counter()
frame = pd.read_parquet(sys.argv[1])
print(time.perf_counter() - started)
"""


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def in_new_process(code: str, *args: object, package: Path | None = None) -> float:
    """Runs ``code`` in a new Python, with the brain package in ``package`` if given."""
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True, env=env
    )
    return float(done.stdout.strip().splitlines()[-1])


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def measure(
    label: str, value: Any, shm: Path, disk: Path, rounds: int, baseline: Path | None, lines: list[str]
) -> None:
    """Runs the rounds for one object and appends its table rows to ``lines``."""
    nbytes = int(value.memory_usage(deep=False).sum()) if isinstance(value, pd.DataFrame) else value.nbytes
    frame = value if isinstance(value, pd.DataFrame) else pd.DataFrame({"x": value})
    brain = Brain(path=shm / "store")
    brain["object"] = value
    parquet = disk / "object.parquet"
    # The build measured ("") and the baseline build, each with its own dumps.
    builds: dict[str, Path | None] = {"": None, **({"baseline ": baseline} if baseline else {})}
    dumps = {(build, level): disk / f"dump-{level}-{i}" for i, build in enumerate(builds) for level in LEVELS}
    times: dict[str, list[float]] = {}

    def dump(build: str, level: int) -> float:
        return in_new_process(DUMP, shm / "store", dumps[build, level], level, package=builds[build])

    def restore(build: str, level: int) -> float:
        target = shm / "restored"
        try:
            return in_new_process(RESTORE, target, dumps[build, level], package=builds[build])
        finally:
            shutil.rmtree(target, ignore_errors=True)

    def read_here() -> float:
        started = time.perf_counter()
        result = pd.read_parquet(parquet)
        seconds = time.perf_counter() - started
        del result
        return seconds

    for round_ in range(rounds):
        writes: list[tuple[str, Callable[[], float]]] = [
            ("parquet write", lambda: timed(lambda: frame.to_parquet(parquet, compression="zstd"))),
            *[
                (f"{build}dump {level}", lambda build=build, level=level: dump(build, level))
                for build in builds
                for level in LEVELS
            ],
        ]
        reads: list[tuple[str, Callable[[], float]]] = [
            ("parquet read", lambda: in_new_process(READ_PARQUET, parquet)),
            ("parquet read here", read_here),
            *[
                (f"{build}restore {level}", lambda build=build, level=level: restore(build, level))
                for build in builds
                for level in LEVELS
            ],
        ]
        if round_ % 2:
            writes.reverse()
            reads.reverse()
        for key, run in writes + reads:
            times.setdefault(key, []).append(run())
        for build in builds:
            for level in LEVELS:
                for key, parquet_key in (
                    (f"{build}dump {level}", "parquet write"),
                    (f"{build}restore {level}", "parquet read"),
                    (f"{build}restore {level} here", "parquet read here"),
                ):
                    brain_key = key.removesuffix(" here")
                    times.setdefault(f"{key} ratio", []).append(times[parquet_key][-1] / times[brain_key][-1])
    sizes = {"parquet write": parquet.stat().st_size}
    sizes.update({f"{build}dump {level}": tree_size(dumps[build, level]) for build in builds for level in LEVELS})

    def row(method: str, key: str, versus: str) -> None:
        median = statistics.median(times[key])
        size = f"{sizes[key] / 1e6:,.0f} MB" if key in sizes else ""
        lines.append(
            f"| {label} | {method} | {spread(times[key], '{:.3f}')} | {nbytes / median / 1e9:.2f} GB/s "
            f"| {size} | {versus} |"
        )

    def ratio(key: str) -> str:
        return spread(times[f"{key} ratio"], "{:.2f}x")

    for build in builds:
        for level in LEVELS:
            default = " (the default)" if level == 3 else ""
            key = f"{build}dump {level}"
            row(f"{build}brain dump, zstd level {level}{default}", key, ratio(key))
    row("Parquet write (zstd)", "parquet write", "1x")
    for build in builds:
        for level in LEVELS:
            key = f"{build}restore {level}"
            versus = f"{ratio(key)}; {ratio(key + ' here')} against the read in this process"
            row(f"{build}brain restore of the level-{level} dump", key, versus)
    row("Parquet read, new process", "parquet read", "1x")
    row("Parquet read, repeated in this process", "parquet read here", "")
    brain.close()
    shutil.rmtree(shm / "store")
    parquet.unlink(missing_ok=True)
    for path in dumps.values():
        shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--array-gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also measure, in the same rounds, the brain package (with its built extension) in DIR, "
        "a directory to put first on PYTHONPATH: another build to compare with",
    )
    args = parser.parse_args()
    # Killed politely, still remove the temporary stores and files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    shm = Path(tempfile.mkdtemp(prefix="brain-persist-bench-", dir="/dev/shm"))
    disk = Path(tempfile.mkdtemp(prefix="brain-persist-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    lines = [
        f"{args.rounds} rounds. time: median (lowest–highest) in seconds. vs Parquet: Parquet's time ÷ brain's "
        "in each round, median (lowest–highest); above 1x brain is faster. Restores and the first Parquet "
        "read run in new processes.",
        "",
        "| object | method | time (s) | throughput | size on disk | vs Parquet |",
        "|---|---|---:|---:|---:|---|",
    ]
    try:
        measure(f"DataFrame {args.rows:,} rows", make_frame(args.rows), shm, disk, args.rounds, args.baseline, lines)
        if args.array_gib > 0:
            array = make_array(int(args.array_gib * (1 << 30)))
            label = f"random float64 array {args.array_gib:g} GiB"
            measure(label, array, shm, disk, args.rounds, args.baseline, lines)
        print("\n".join(lines))
        return 0
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
