"""Frames in every library: reads, writes and the first in-place change, against their peers.

    python brain-bench/frames.py [--rows 10000000] [--before 54da7a2]

On the benchmark frame (workloads.make_frame: 5 float64, 2 int64 and one
string column), written from pandas, pyarrow and polars, and read in each
library. Every figure is the median of interleaved repetitions in one run,
beside its peer: the pyarrow read for reads, the pyarrow write of the same
data for writes, a copy of one column for the first in-place change, and
the previous release's code path (``--before``, brain-py's _codecs.py at
that commit, run over the same store) for "before" rows. Run it on a
release build (``make setup-release``) of a quiet machine; compare ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_frame  # noqa: E402

import brain  # noqa: E402
from brain import Brain, _codecs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def codecs_at(commit: str) -> types.ModuleType | None:
    """brain's _codecs.py as it was at ``commit``, loaded beside today's (None without git)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:brain-py/python/brain/_codecs.py"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("brain._codecs_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "brain"
    exec(compile(source, f"{commit}:_codecs.py", "exec"), module.__dict__)  # noqa: S102 (our own file, at a commit)
    return module


def median_time(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(repeat):
        arg = setup() if setup is not None else None
        started = time.perf_counter()
        fn() if setup is None else fn(arg)  # type: ignore[call-arg]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Samples(dict[str, float]):
    """Median time per call of each case, and every round's time, for paired ratios."""

    rounds: dict[str, list[float]]

    def ratio(self, label: str, peer: str) -> float:
        """The median over rounds of label's time ÷ peer's time in the same round:
        steadier than a ratio of medians on a shared machine, whose load drifts."""
        return statistics.median(a / b for a, b in zip(self.rounds[label], self.rounds[peer]))


def interleaved(cases: dict[str, Callable[[], Any]], rounds: int, calls: int = 1) -> Samples:
    """Each case's time per call, the cases taking turns round after round (in
    reverse order every other round, so no case always follows the same one)."""
    samples: dict[str, list[float]] = {label: [] for label in cases}
    order = list(cases.items())
    for round_ in range(rounds):
        for label, fn in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[label].append((time.perf_counter() - started) / calls)
    result = Samples({label: statistics.median(values) for label, values in samples.items()})
    result.rounds = samples
    return result


def show(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


class Table:
    def __init__(self, title: str) -> None:
        self.lines = [f"\n{title}\n", "| operation | median | peer | peer median | ratio | target |", "|---|---:|---|---:|---:|---|"]
        self.note = "ratio: the median over rounds of the two times measured in the same round"

    def row(
        self,
        label: str,
        seconds: float,
        peer: str = "",
        peer_seconds: float | None = None,
        target: str = "",
        paired: float | None = None,
    ) -> None:
        ratio = f"{(paired if paired is not None else seconds / peer_seconds):.2f}" if peer_seconds else ""
        peer_cell = show(peer_seconds) if peer_seconds else ""
        self.lines.append(f"| {label} | {show(seconds)} | {peer} | {peer_cell} | {ratio} | {target} |")

    def print(self) -> None:
        print("\n".join(self.lines), flush=True)
        print(f"\n({self.note})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--before", default="54da7a2", help="the commit whose frame code is timed for the 'before' rows")
    parser.add_argument("--reads", type=int, default=31, help="rounds of read timings (each round: 20 calls of each read)")
    parser.add_argument("--writes", type=int, default=7, help="rounds of write timings")
    args = parser.parse_args()
    before = codecs_at(args.before)
    print(f"brain {brain.__file__}; pyarrow {pa.__version__}, polars {pl.__version__}, pandas {pd.__version__}, numpy {np.__version__}")
    print(f"frame: {args.rows:,} rows; before = {args.before if before is not None else '(git unavailable: no before rows)'}")

    workdir = Path(tempfile.mkdtemp(prefix="brain-frames-", dir="/dev/shm"))
    try:
        store = Brain(path=workdir / "store")
        frame = make_frame(args.rows)
        table = pa.Table.from_pandas(frame, preserve_index=None)
        polars_frame = pl.from_pandas(frame)
        views_table = polars_frame.to_arrow(compat_level=pl.CompatLevel.newest())
        raw, ns = store.store, store.namespace

        # ------------------------------------------------------------ writes (replacing: the refresh case)
        writes: dict[str, Callable[[], Any]] = {
            "pyarrow Table (large_string)": lambda: store.__setitem__("t", table),
            "pyarrow Table (string_view, what polars exports)": lambda: store.__setitem__("tv", views_table),
            "polars DataFrame": lambda: store.__setitem__("p", polars_frame),
            "pandas DataFrame": lambda: store.__setitem__("f", frame),
        }
        if before is not None:
            writes["polars DataFrame, before"] = lambda: before.encode(raw, ns, "p-before", polars_frame, None)
            writes["pandas DataFrame, before"] = lambda: before.encode(raw, ns, "f-before", frame, None)
        for fn in writes.values():
            fn()  # the first write of a name takes fresh pages; the timed ones replace
        written = interleaved(writes, args.writes)
        out = Table("Writes (replacing a stored version; medians of interleaved rounds)")
        pyarrow_write = "pyarrow Table (large_string)"
        for label, seconds in written.items():
            target = "<= 1.00 (pyarrow)" if label == "polars DataFrame" else ""
            out.row(f"write {label}", seconds, "pyarrow write", written[pyarrow_write], target, written.ratio(label, pyarrow_write))
        if before is not None:
            for library in ("polars", "pandas"):
                after, earlier = f"{library} DataFrame", f"{library} DataFrame, before"
                out.row(f"write {after}, after ÷ before", written[after], "before", written[earlier], "", written.ratio(after, earlier))
        out.print()

        # ------------------------------------------------------------ reads
        # The user's calls, and, for the before/after rows, the codec alone over the same
        # native get (brain's Python class is not part of this comparison).
        reads: dict[str, Callable[[], Any]] = {
            "pyarrow Table: get(name, as_arrow=True) of the pandas frame": lambda: store.get("f", as_arrow=True),
            "pyarrow Table: get(name, as_arrow=True) of the polars frame": lambda: store.get("p", as_arrow=True),
            "polars DataFrame: brain[name] of the polars frame": lambda: store["p"],
            "pandas DataFrame: brain[name] of the pandas frame": lambda: store["f"],
            "codec: pyarrow Table of the pandas frame": lambda: _codecs.decode(raw.get(ns, "f"), library="arrow"),
            "codec: pandas DataFrame": lambda: _codecs.decode(raw.get(ns, "f")),
            "codec: polars DataFrame": lambda: _codecs.decode(raw.get(ns, "p")),
        }
        if before is not None:
            reads["codec before: pyarrow Table of the pandas frame"] = lambda: before.decode(raw.get(ns, "f"), as_arrow=True)
            reads["codec before: pandas DataFrame"] = lambda: before.decode(raw.get(ns, "f"))
            reads["codec before: polars DataFrame (large_string stored)"] = lambda: before.decode(raw.get(ns, "p-before"))
        for fn in reads.values():
            fn()
        got = interleaved(reads, args.reads, calls=20)
        out = Table("Reads (same process, mapping cached; medians of interleaved rounds of 20 calls)")
        arrow_label = "pyarrow Table: get(name, as_arrow=True) of the pandas frame"
        polars_arrow_label = "pyarrow Table: get(name, as_arrow=True) of the polars frame"
        arrow_read = got[arrow_label]
        for label, seconds in got.items():
            if label.startswith("polars DataFrame: brain"):
                out.row(f"read {label}", seconds, "pyarrow read of the same object", got[polars_arrow_label], "<= 1 ms, <= 5.00", got.ratio(label, polars_arrow_label))
            else:
                out.row(f"read {label}", seconds, "pyarrow read", arrow_read, "", got.ratio(label, arrow_label))
        if before is not None:
            for library, after_label, before_label in (
                ("pandas", "codec: pandas DataFrame", "codec before: pandas DataFrame"),
                ("pyarrow", "codec: pyarrow Table of the pandas frame", "codec before: pyarrow Table of the pandas frame"),
                ("polars", "codec: polars DataFrame", "codec before: polars DataFrame (large_string stored)"),
            ):
                target = "<= 1 (no slower)" if library != "polars" else ""
                out.row(f"read as {library}, after ÷ before", got[after_label], "before", got[before_label], target, got.ratio(after_label, before_label))
        out.print()

        # ------------------------------------------------------------ another library's frame: the conversions
        crossing = {
            "the pandas frame as polars (large_string to views)": lambda: store.get("f", as_polars=True),
            "the polars frame as pandas (views to large_string)": lambda: store.get("p", as_pandas=True),
        }
        converted = interleaved(crossing, max(3, args.writes))
        out = Table("Reading another library's frame (the conversion its reader makes)")
        for label, seconds in converted.items():
            out.row(f"read {label}", seconds, "pyarrow read", arrow_read)
        out.print()

        # ------------------------------------------------------------ the first in-place change
        first = median_time(lambda df: df.iloc.__setitem__((0, 0), 0.5), args.writes, setup=lambda: store["f"])

        def second_change(df: pd.DataFrame) -> None:
            df.iloc[1, 0] = 0.25

        def changed_once() -> pd.DataFrame:
            df = store["f"]
            df.iloc[0, 0] = 0.5
            return df

        second = median_time(second_change, args.writes, setup=changed_once)
        owned = median_time(lambda df: df.iloc.__setitem__((0, 0), 0.5), args.writes, setup=lambda: frame.copy(deep=True))
        column = frame["price_0"].to_numpy()
        column_copy = median_time(lambda: column.copy(), args.writes)
        frame_copy = median_time(lambda: frame.copy(deep=True), max(3, args.writes // 2))
        out = Table("The first in-place change of one float column of a frame read from brain (df.iloc[0, 0] = 0.5)")
        out.row("first change", first, "copy of that column (numpy)", column_copy, "about 1 (the column, not the frame)")
        out.row("first change", first, "deep copy of the frame", frame_copy, "far below 1")
        out.row("second change (writes into the copy)", second, "copy of that column", column_copy)
        # A frame built in memory keeps its float columns in one 2-D block: its first change of a
        # column copies that column out of the block, so it is no cheaper.
        out.row("the same change on the frame as built in memory (a fresh deep copy)", owned, "copy of that column", column_copy)
        out.print()
        assert (store["f"]["price_0"].to_numpy() == column).all(), "the stored frame changed"
        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
