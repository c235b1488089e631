"""Two processes share a large DataFrame through brain, timed against Parquet.

The writer (this process) builds the frame, stores it in brain and writes it
as Parquet; a second process reads it both ways and checks it got the same
data. The `brain` command then lists the store. Everything lives in a
temporary store and temporary files, removed at the end.

    python examples/demo.py [--rows 10000000] [--brain-bin target/release/brain]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from brain import Brain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "brain-bench"))
from workloads import make_frame  # noqa: E402  (the benchmarks' frame, shared)


def fingerprint(frame: pd.DataFrame) -> tuple[int, float, int, str]:
    return (len(frame), float(frame["price_0"].sum()), int(frame["units"].sum()), str(frame["sku"].iloc[-1]))


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def reader(store: str, shm_parquet: str, disk_parquet: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """The second process: read the frame from brain and from Parquet, report times and fingerprints."""
    import pyarrow  # noqa: F401  (imported up front: the timings are of reading, not of importing)

    brain = Brain(path=store)
    results = {}
    frame, results["brain (pandas)"] = timed(lambda: brain["sales"])
    _, results["brain (pyarrow Table)"] = timed(lambda: brain.get("sales", as_arrow=True))
    parquet_shm, results["Parquet on /dev/shm"] = timed(lambda: pd.read_parquet(shm_parquet))
    _, results["Parquet on disk"] = timed(lambda: pd.read_parquet(disk_parquet))
    out.put((results, fingerprint(frame), fingerprint(parquet_shm), frame["price_0"].to_numpy().flags.writeable))


def human(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.1f} ms"
    return f"{seconds:,.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--brain-bin", default=None, help="the brain command, to list the store at the end")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="brain-demo-", dir="/dev/shm"))
    diskdir = Path(tempfile.mkdtemp(prefix="brain-demo-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        store = str(workdir / "store")
        shm_parquet, disk_parquet = str(workdir / "sales.parquet"), str(diskdir / "sales.parquet")
        print(f"building a {args.rows:,}-row DataFrame (5 float64, 2 int64, 1 string column) ...")
        frame = make_frame(args.rows)
        megabytes = frame.memory_usage(deep=False).sum() / 1e6
        brain = Brain(path=store)

        writes = {}
        _, writes["brain"] = timed(lambda: brain.learn("sales", frame, description="demo frame"))
        _, writes["Parquet on /dev/shm"] = timed(lambda: frame.to_parquet(shm_parquet))
        _, writes["Parquet on disk"] = timed(lambda: frame.to_parquet(disk_parquet))

        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=reader, args=(store, shm_parquet, disk_parquet, queue))
        child.start()
        reads, from_brain, from_parquet, writeable = queue.get(timeout=600)
        child.join()
        if from_brain != fingerprint(frame) or from_parquet != fingerprint(frame):
            print("the reader saw different data:", from_brain, from_parquet, fingerprint(frame), file=sys.stderr)
            return 1

        print(f"\nwriter pid {os.getpid()} stored the frame (~{megabytes:,.0f} MB); reader pid {child.pid} read it back.\n")
        print(f"{'write':<24}{'time':>12}{'time / brain':>14}")
        for name, seconds in writes.items():
            print(f"{name:<24}{human(seconds):>12}{seconds / writes['brain']:>13.3g}x")
        print(f"\n{'read (second process)':<24}{'time':>12}{'time / brain':>14}")
        for name, seconds in reads.items():
            print(f"{name:<24}{human(seconds):>12}{seconds / reads['brain (pandas)']:>13.3g}x")
        print(f"\nthe reader's columns are views of shared memory (writeable={writeable}); same data: yes")

        if args.brain_bin:
            print(f"\n$ brain --store {store} ls")
            sys.stdout.flush()
            subprocess.run([args.brain_bin, "--store", store, "ls"], check=True)
            print(f"$ brain --store {store} stats")
            sys.stdout.flush()
            subprocess.run([args.brain_bin, "--store", store, "stats"], check=True)
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(diskdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
