"""Reading only some columns of a stored frame, against Parquet and the whole read.

    python brain-bench/columns.py [--rows 10000000] [--wide-rows 1000000] [--rounds 15]

Two frames: the benchmark frame (workloads.make_frame: 10 million rows, 5
float64, 2 int64 and one string column) and a wide one (1 million rows, 165
float64 columns). Each is stored in brain (written from pandas) and as a
Parquet file on /dev/shm. Timed in one run, cases taking turns round after
round, medians:

- two columns as pandas: ``brain.get(name, columns=[a, b])`` against
  ``pd.read_parquet(path, columns=[a, b])`` (the target: at least 100x
  faster) and against ``brain[name]``, the whole frame as pandas;
- the same two columns as a pyarrow Table, against the whole table;
- pandas' own floor: a shallow copy (``frame.copy(deep=False)``) of a
  two-column frame already built over the same values, the least any
  reader hands back as a new pandas frame. Parquet's time over it is the
  most any reader could reach in the run.

Reads repeat in one process (the mapping is cached, as for a Dash worker).
Run on a release build (``make setup-release``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_frame  # noqa: E402

from brain import Brain  # noqa: E402


def wide_frame(rows: int, columns: int = 165, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"m{i:03d}": rng.random(rows) for i in range(columns)})


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per case; cases alternate, in reverse order every other round."""
    for fn in cases.values():
        fn()  # warm: mappings, imports, the page cache of the Parquet file
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            times[name].append(timed(cases[name]))
    return {name: statistics.median(values) for name, values in times.items()}


def show(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} µs"


def run(label: str, frame: pd.DataFrame, picked: list[str], root: Path, rounds: int) -> None:
    store = Brain(path=str(root / "store"))
    try:
        store["frame"] = frame
        parquet = root / f"{label}.parquet"
        frame.to_parquet(parquet)
        built = store.get("frame", columns=picked)
        medians = measure(
            {
                "brain, 2 columns as pandas": lambda: store.get("frame", columns=picked),
                "Parquet, 2 columns as pandas": lambda: pd.read_parquet(parquet, columns=picked),
                "brain, whole frame as pandas": lambda: store["frame"],
                "brain, 2 columns as pyarrow": lambda: store.get("frame", columns=picked, as_arrow=True),
                "brain, whole frame as pyarrow": lambda: store.get("frame", as_arrow=True),
                "pandas alone, a shallow copy of the 2 columns built": lambda: built.copy(deep=False),
            },
            rounds,
        )
    finally:
        store.close()
    two = medians["brain, 2 columns as pandas"]
    print(f"\n{label}: {len(frame):,} rows, {frame.shape[1]} columns; reading {picked}\n")
    print("| read | median | ratio to brain's 2 columns as pandas |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        print(f"| {name} | {show(seconds)} | {seconds / two:,.1f} |")
    arrow_two, arrow_all = medians["brain, 2 columns as pyarrow"], medians["brain, whole frame as pyarrow"]
    parquet_time = medians["Parquet, 2 columns as pandas"]
    floor = medians["pandas alone, a shallow copy of the 2 columns built"]
    print(f"\nParquet / brain: {parquet_time / two:,.0f}x (target: at least 100x)")
    print(f"Parquet / pandas alone: {parquet_time / floor:,.0f}x (the most any reader of pandas could reach here)")
    print(f"whole frame / 2 columns, pandas: {medians['brain, whole frame as pandas'] / two:,.1f}x")
    print(f"whole table / 2 columns, pyarrow: {arrow_all / arrow_two:,.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--wide-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="brain-columns-bench-", dir="/dev/shm"))
    try:
        run("the benchmark frame", make_frame(args.rows), ["price_1", "units"], root / "narrow", args.rounds)
        run("the wide frame", wide_frame(args.wide_rows), ["m007", "m123"], root / "wide", args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
