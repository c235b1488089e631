"""Frames that change in place: assign, append and compact, against writing the frame again.

    python brain-bench/frames_in_place.py [--rows 10000000] [--wide-rows 1000000] [--rounds 15]

Every option has an environment variable, for a quick smoke run:
FRAMES_BENCH_ROWS, FRAMES_BENCH_WIDE_ROWS, FRAMES_BENCH_ROUNDS,
FRAMES_BENCH_APPENDS (100) and FRAMES_BENCH_APPEND_ROWS (10,000).

Two frames, built in one run: the benchmark frame (workloads.make_frame:
10 million rows, 5 float64, 2 int64 and one string column) and a wide one
(columns.wide_frame: 1 million rows, 165 float64 columns). On each, the
medians of several rounds, cases taking turns round after round, with
their ratios from the same run:

1. adding one float64 column: ``brain.assign(name, added=column)`` on a
   frame written whole with ``brain[name] = frame``, against writing the
   frame again with the column (``brain[name] = frame_with_column``); each
   round starts again from the frame written whole, outside the timed
   region (target: the rewrite at least 5x slower). The stored size is
   shown: frames of at least 64 MiB are stored in parts from the start,
   so an assign writes only the new column; a smaller frame is copied into
   a part by its first change;
2. ``brain.append(name, rows)`` of 10,000 rows (target: under 5 ms
   whatever the frame's size), 100 times in a row on a frame written whole,
   once per round;
3. the frame read as pandas (``brain.get(name)``) and as pyarrow
   (``as_arrow=True``) after those 100 appends, after ``brain.compact(name)``
   and when the same rows are written at once, with ratios to "written at
   once"; and the compact call itself;
4. two columns read as pandas (``brain.get(name, columns=[a, b])``) on the
   same three frames.

The store lives in a scratch directory on /dev/shm, removed at the end
(also on an error or SIGTERM; a later run removes what a killed one left).
Run on a release build (``make setup-release``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from columns import show, wide_frame  # noqa: E402
from harness import remove_scratch, scratch_dir  # noqa: E402
from workloads import make_frame  # noqa: E402

import brain  # noqa: E402
from brain import Brain, _frames  # noqa: E402

ENV = {
    "rows": "FRAMES_BENCH_ROWS",
    "wide_rows": "FRAMES_BENCH_WIDE_ROWS",
    "rounds": "FRAMES_BENCH_ROUNDS",
    "appends": "FRAMES_BENCH_APPENDS",
    "append_rows": "FRAMES_BENCH_APPEND_ROWS",
}
APPEND_TARGET = 5e-3  # seconds, whatever the frame's size
ASSIGN_TARGET = 5.0  # rewrite / assign

# An untimed setup (None: none) and the timed call.
Case = tuple[Callable[[], Any] | None, Callable[[], Any]]


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes; what it returns is freed after the clock stops."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    del result
    return seconds


def measure(cases: dict[str, Case], rounds: int) -> dict[str, list[float]]:
    """Seconds of each round per case, after one untimed warm-up each; cases
    take turns, in reverse order every other round; a case's setup runs
    right before it, outside the timed region."""
    for setup, fn in cases.values():
        if setup is not None:
            setup()
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            setup, fn = cases[name]
            if setup is not None:
                setup()
            times[name].append(timed(fn))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):,.1f} MiB"


def stored(store: Brain, name: str) -> str:
    """How ``name`` is stored: its size and parts."""
    obj = store.view(name)
    parts = getattr(obj, "part_count", None)
    if parts is None:  # one object: its metadata's size is the payload's
        info = store.info(name)
        return f"{mib(int(info['size']) if info is not None else 0)}, as one object, not in parts"
    # A frame in parts: the manifest's metadata gives its own size; the parts' bytes are the Frame's.
    return f"{mib(int(obj.size))} in {parts} part{'s' if parts != 1 else ''}"


def env_int(key: str, default: int) -> int:
    value = os.environ.get(ENV[key])
    if value is None or not value.strip():
        return default
    try:
        return int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise SystemExit(f"{ENV[key]}={value!r}: not a whole number") from None


def command_line() -> str:
    env = [f"{variable}={os.environ[variable]}" for variable in ENV.values() if variable in os.environ]
    return shlex.join([*env, "python", *sys.argv])


def provenance() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, check=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (
        f"commit {commit}, brain from {Path(brain.__file__).parent}, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs"
    )


def chunks_of(frame: pd.DataFrame, appends: int, rows: int) -> list[pd.DataFrame]:
    """``appends`` slices of ``rows`` rows of ``frame`` (views: no copies),
    going through the frame and starting again at its top."""
    span = len(frame) - rows + 1
    return [frame.iloc[(i * rows) % span :][:rows] for i in range(appends)]


def run(label: str, frame: pd.DataFrame, picked: list[str], root: Path, args: argparse.Namespace) -> dict[str, float]:
    """All four measurements on ``frame``; the figures the targets are about."""
    rounds = args.rounds
    rng = np.random.default_rng(7)
    column = rng.random(len(frame))
    print(f"\n## {label}: {len(frame):,} rows, {frame.shape[1]} columns\n")
    store = Brain(path=str(root / "store"))
    try:
        # 1. One float64 column: assign against writing the frame again.
        with_column = frame.assign(added=column)
        store["frame"] = frame
        start_state = stored(store, "frame")
        store.assign("frame", added=column)
        check = store.get("frame", columns=["added"], as_arrow=True)
        if not np.array_equal(check.column("added").to_numpy(), column):
            raise AssertionError("brain.assign: the stored column differs from the one assigned")
        del check
        after_assign = stored(store, "frame")

        def restore() -> None:
            store["frame"] = frame

        adding = measure(
            {
                "brain.assign(name, added=column)": (restore, lambda: store.assign("frame", added=column)),
                "brain[name] = frame_with_column": (restore, lambda: store.__setitem__("frame", with_column)),
            },
            rounds,
        )
        del store["frame"], with_column
        gc.collect()
        assign_s = median(adding["brain.assign(name, added=column)"])
        rewrite_s = median(adding["brain[name] = frame_with_column"])
        print(f"### Adding one float64 column ({rounds} rounds, each from the frame written whole)\n")
        print(f"Written whole with `brain[name] = frame`: {start_state}; after one assign: {after_assign}.")
        print(
            f"(Frames of at least {mib(_frames.PARTS_FROM_BYTES)} are stored in parts from the start; "
            "a smaller one is copied into a part by its first change.)\n"
        )
        print("| case | median | ratio to assign |")
        print("|---|---:|---:|")
        for name, values in adding.items():
            print(f"| {name} | {show(median(values))} | {median(values) / assign_s:,.1f} |")
        print(f"\nrewrite / assign: {rewrite_s / assign_s:,.1f}x (target: at least {ASSIGN_TARGET:g}x)")

        # 2. and 3. Appends, then compaction, against the same rows written at once.
        k, appends = args.append_rows, args.appends
        if k > len(frame):
            raise SystemExit(f"{ENV['append_rows']}={k} is more than the frame's {len(frame)} rows")
        chunks = chunks_of(frame, appends, k)
        by_position: list[list[float]] = [[] for _ in chunks]

        def build(name: str) -> None:
            """The frame written whole, then ``appends`` appends, each timed."""
            store[name] = frame
            for i, chunk in enumerate(chunks):
                by_position[i].append(timed(functools.partial(store.append, name, chunk)))

        build("appended")
        compacting: list[float] = []
        for _ in range(rounds):
            build("compacted")
            start = time.perf_counter()
            joined = store.compact("compacted")
            compacting.append(time.perf_counter() - start)
            if not joined:
                raise AssertionError("brain.compact returned False on a frame appended to")
        pieces, whole = stored(store, "appended"), stored(store, "compacted")
        at_once = pd.concat([frame, *chunks], ignore_index=True)
        # pd.concat keeps an Arrow-backed column (pandas' str) in the pieces
        # it was joined from: one array per column, as a frame built at once has.
        for label in at_once.columns:
            if hasattr(at_once[label].array, "_pa_array"):
                at_once[label] = pd.Series(
                    type(at_once[label].array)(at_once[label].array._pa_array.combine_chunks()),
                    index=at_once.index,
                    name=label,
                )
        store["at_once"] = at_once
        total = len(at_once)
        expected = at_once[picked].copy()  # not a view keeping the whole frame alive
        del at_once
        gc.collect()
        for name in ("appended", "compacted"):
            got = store.get(name, columns=picked)
            if len(got) != total or not got.equals(expected) or not got.index.equals(pd.RangeIndex(total)):
                raise AssertionError(f"{name}: columns {picked} differ from the same rows written at once")
            del got
        del expected
        at_once_state = stored(store, "at_once")

        every = [seconds for position in by_position for seconds in position]
        append_s = median(every)
        print(f"\n### Appending {k:,} rows ({appends} appends in a row on the frame written whole, {rounds + 1} times)\n")
        print("| append | median | slowest |")
        print("|---|---:|---:|")
        print(f"| every append | {show(append_s)} | {show(max(every))} |")
        print(f"| the first (onto the frame written whole) | {show(median(by_position[0]))} | {show(max(by_position[0]))} |")
        print(f"| the last (onto {appends} pieces) | {show(median(by_position[-1]))} | {show(max(by_position[-1]))} |")
        print(f"\nappend median: {append_s * 1e3:,.2f} ms (target: under {APPEND_TARGET * 1e3:g} ms)")
        # The floor: the same number of bytes written as a new raw object
        # (an append writes a new part: new pages, not a replaced object's).
        part_bytes = int(chunks[0].memory_usage(index=False, deep=False).sum())
        raw = bytes(part_bytes)
        floor = [timed(functools.partial(store.__setitem__, f"floor {i}", raw)) for i in range(appends)]
        for i in range(appends):
            store.forget(f"floor {i}")
        # The kernel's own floor: the bytes written by one pwrite into a new
        # file beside the store (new pages, no mapping, no work of brain's);
        # the files are kept until all are written, as the parts are.
        kernel = []
        scratch = root / "kernel-floor"
        scratch.mkdir()
        for i in range(appends):
            fd = os.open(scratch / str(i), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            try:
                kernel.append(timed(functools.partial(os.pwrite, fd, raw, 0)))
            finally:
                os.close(fd)
        for i in range(appends):
            (scratch / str(i)).unlink()
        scratch.rmdir()
        del raw
        print(
            f"floor: {show(median(floor))} to write {mib(part_bytes)} (the rows' bytes) as a new raw "
            f"object; append / floor {append_s / median(floor):,.1f}x"
        )
        print(
            f"kernel floor: {show(median(kernel))} (fastest {show(min(kernel))}) for one pwrite of those "
            f"bytes into a new file on the store's filesystem; append / kernel floor "
            f"{append_s / median(kernel):,.1f}x"
        )

        reads = measure(
            {
                f"{form}, {state}": (None, functools.partial(store.get, name, **kwargs))
                for form, kwargs in (
                    ("pandas", {}),
                    ("pyarrow", {"as_arrow": True}),
                    (f"2 columns as pandas {picked}", {"columns": picked}),
                )
                for state, name in (("appended", "appended"), ("compacted", "compacted"), ("at once", "at_once"))
            },
            rounds,
        )
        print(f"\n### Reading {total:,} rows: after {appends} appends, after compact, written at once ({rounds} rounds)\n")
        print(f"Stored: after the appends {pieces}; compacted {whole}; written at once {at_once_state}.\n")
        print("| read | after appends | after compact | written at once | appends / at once | compact / at once |")
        print("|---|---:|---:|---:|---:|---:|")
        figures = {}
        for form in ("pandas", "pyarrow", f"2 columns as pandas {picked}"):
            appended, compacted, once = (median(reads[f"{form}, {state}"]) for state in ("appended", "compacted", "at once"))
            figures[form] = appended / once
            print(
                f"| {form} | {show(appended)} | {show(compacted)} | {show(once)} "
                f"| {appended / once:,.1f} | {compacted / once:,.1f} |"
            )
        print(
            f"\nbrain.compact(name) after {appends} appends: {show(median(compacting))} median of {rounds} "
            f"(fastest {show(min(compacting))}, slowest {show(max(compacting))})"
        )
        for name in ("appended", "compacted", "at_once"):
            del store[name]
        return {
            "rewrite / assign": rewrite_s / assign_s,
            "append": append_s,
            "kernel floor": median(kernel),
            "pandas read, appends / at once": figures["pandas"],
        }
    finally:
        store.close()
        gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=env_int("rows", 10_000_000))
    parser.add_argument("--wide-rows", type=int, default=env_int("wide_rows", 1_000_000))
    parser.add_argument("--rounds", type=int, default=env_int("rounds", 15))
    parser.add_argument("--appends", type=int, default=env_int("appends", 100))
    parser.add_argument("--append-rows", type=int, default=env_int("append_rows", 10_000))
    args = parser.parse_args()
    if min(args.rows, args.wide_rows, args.rounds, args.appends, args.append_rows) < 1:
        parser.error("sizes, rounds and appends are at least 1")
    # SIGTERM (a timeout, a kill) unwinds like an error, so the store is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(f"`{command_line()}`\n")
    print(provenance())
    root = scratch_dir("brain-frames-in-place-bench-")
    summary: dict[str, dict[str, float]] = {}
    try:
        frame = make_frame(args.rows)
        summary["the benchmark frame"] = run("the benchmark frame", frame, ["price_1", "units"], root / "narrow", args)
        del frame
        remove_scratch(root / "narrow")
        gc.collect()
        frame = wide_frame(args.wide_rows)
        summary["the wide frame"] = run("the wide frame", frame, ["m007", "m123"], root / "wide", args)
        del frame
    finally:
        remove_scratch(root)
    print("\n## Against the targets\n")
    print(
        "| frame | rewrite / assign (target >= 5x) | append median (target < 5 ms) "
        "| kernel floor of the append's bytes | pandas read, appended / at once |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, figures in summary.items():
        ratio, append = figures["rewrite / assign"], figures["append"]
        print(
            f"| {label} | {ratio:,.1f}x {'met' if ratio >= ASSIGN_TARGET else 'NOT met'} "
            f"| {append * 1e3:,.2f} ms {'met' if append < APPEND_TARGET else 'NOT met'} "
            f"| {figures['kernel floor'] * 1e3:,.2f} ms "
            f"| {figures['pandas read, appends / at once']:,.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
