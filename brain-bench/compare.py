"""brain against Parquet and the physical limit, on the same data, in one run.

    python brain-bench/compare.py --quick        # 1M-row frame, 1 MiB and 64 MiB arrays (< 2 minutes)
    python brain-bench/compare.py                # 10M-row frame, 1 MiB, 64 MiB and 1 GiB arrays

For every object it measures writing and reading with brain, with Parquet
(to /dev/shm and to disk; all columns and 2 of the 8), in this process and
from a second process, and the single-thread memcpy of the same bytes. With
``--rust-bin`` (built by ``cargo build --release -p brain-bench --bin
compare``) the same frame is measured from Rust too: brain's Arrow calls
against arrow-rs Parquet. Every row reports the median and the spread (10th
to 90th percentile) over repeated runs, and ratios to Parquet and to memcpy.

Output, in ``--out`` (default ``bench-results/``): ``results.md`` (the
table, also printed), ``results.json`` and ``results.png`` (time against
object size, log-log, one line per method). Everything is written to
temporary stores and files that are removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_array, make_frame  # noqa: E402

from brain import Brain  # noqa: E402

TWO_COLUMNS = ["price_0", "sku"]


@dataclass
class Row:
    """One measured operation on one object."""

    obj: str
    nbytes: int
    op: str
    method: str
    where: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def spread(self) -> tuple[float, float]:
        ordered = sorted(self.times)
        low = ordered[int(0.1 * (len(ordered) - 1))]
        high = ordered[int(round(0.9 * (len(ordered) - 1)))]
        return low, high


def measure(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None) -> list[float]:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def fresh_file_write(path: Path, data: memoryview) -> None:
    """write() of the bytes into a new tmpfs file: the pages a put must fill."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        done = 0
        while done < len(data):
            done += os.write(fd, data[done : done + (1 << 30)])
    finally:
        os.close(fd)
    os.unlink(path)


def overwrite(path: Path, data: memoryview) -> None:
    """write() of the bytes over an existing file's pages: what a recycled put must fill."""
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done : done + (1 << 30)], done)
    finally:
        os.close(fd)


def brain_writes(row: Callable[[str, str, str, list[float]], None], brain: Brain, name: str, value: Any,
                 repeats: int) -> None:
    """brain's two kinds of write: replacing an object, whose file the store
    refills (the refreshed-frame case), and a name that did not exist, which
    gets fresh pages."""
    brain.learn(name, value)
    row("write", "brain set, replacing", "same process", measure(lambda: brain.learn(name, value), repeats))
    fresh = f"{name}-new"
    row("write", "brain set, new name", "same process",
        measure(lambda: brain.learn(fresh, value), repeats, setup=lambda: brain.forget(fresh)))
    brain.forget(fresh)


def second_process_reads(store: str, name: str, parquet_files: dict[str, str], repeats: int, out: Any) -> None:
    """Run in a spawned process: brain and Parquet reads of an object another process wrote."""
    import pyarrow  # noqa: F401  (imported before timing: reads are measured, not imports)

    brain = Brain(path=store)
    results: dict[str, list[float]] = {}
    first = time.perf_counter()
    value = brain[name]
    results["brain get, first in process"] = [time.perf_counter() - first]
    del value
    if parquet_files:
        results["brain get (pandas)"] = measure(lambda: brain[name], repeats)
        results["brain get (pyarrow Table)"] = measure(lambda: brain.get(name, as_arrow=True), repeats)
        results["brain get 2 columns (pandas)"] = measure(
            lambda: brain.get(name, as_arrow=True).select(TWO_COLUMNS).to_pandas(split_blocks=True), repeats
        )
        for where, path in parquet_files.items():
            results[f"Parquet read ({where})"] = measure(lambda p=path: pd.read_parquet(p), repeats)
            results[f"Parquet read 2 columns ({where})"] = measure(
                lambda p=path: pd.read_parquet(p, columns=TWO_COLUMNS), repeats
            )
    else:
        results["brain get (numpy)"] = measure(lambda: brain[name], repeats)
    out.put(results)


def run_second_process(store: str, name: str, parquet_files: dict[str, str], repeats: int) -> dict[str, list[float]]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=second_process_reads, args=(store, name, parquet_files, repeats, queue))
    child.start()
    try:
        return queue.get(timeout=1800)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()


def bench_frame(rows: int, repeats: int, shm: Path, disk: Path, brain: Brain) -> list[Row]:
    frame = make_frame(rows)
    nbytes = int(frame.memory_usage(deep=False).sum())
    label = f"DataFrame {rows:,} rows"
    out: list[Row] = []

    def row(op: str, method: str, where: str, times: list[float]) -> None:
        out.append(Row(label, nbytes, op, method, where, times))

    brain_writes(row, brain, "frame", frame, repeats)
    files = {"/dev/shm": str(shm / "frame.parquet"), "disk": str(disk / "frame.parquet")}
    for where, path in files.items():
        row("write", f"Parquet write ({where})", "same process", measure(lambda p=path: frame.to_parquet(p), repeats))
    row("read", "brain get (pandas)", "same process", measure(lambda: brain["frame"], repeats))
    row("read", "brain get (pyarrow Table)", "same process", measure(lambda: brain.get("frame", as_arrow=True), repeats))
    for method, times in run_second_process(brain.path, "frame", files, repeats).items():
        row("read", method, "second process", times)
    source = np.ones(nbytes, dtype=np.uint8)
    target = np.zeros(nbytes, dtype=np.uint8)
    row("memcpy", "memcpy of as many bytes, pre-faulted", "same process",
        measure(lambda: np.copyto(target, source), repeats))
    brain.forget("frame")
    return out


def bench_array(nbytes: int, repeats: int, shm: Path, brain: Brain) -> list[Row]:
    array = make_array(nbytes)
    label = f"float64 array {human_bytes(nbytes)}"
    out: list[Row] = []

    def row(op: str, method: str, where: str, times: list[float]) -> None:
        out.append(Row(label, nbytes, op, method, where, times))

    brain_writes(row, brain, "array", array, repeats)
    row("read", "brain get (numpy)", "same process", measure(lambda: brain["array"], repeats))
    for method, times in run_second_process(brain.path, "array", {}, repeats).items():
        row("read", method, "second process", times)
    raw = memoryview(array).cast("B")
    row("write", "write() into a fresh tmpfs file", "same process",
        measure(lambda: fresh_file_write(shm / "fresh.bin", raw), repeats))
    allocated = shm / "allocated.bin"
    allocated.write_bytes(raw)
    row("write", "write() over allocated tmpfs pages", "same process",
        measure(lambda: overwrite(allocated, raw), repeats))
    allocated.unlink()
    prefaulted = np.empty_like(array)
    prefaulted.fill(0.0)
    row("memcpy", "memcpy into pre-faulted memory", "same process",
        measure(lambda: np.copyto(prefaulted, array), repeats))
    row("memcpy", "memcpy into fresh memory", "same process",
        measure(lambda: np.copy(array), repeats))
    brain.forget("array")
    return out


def rust_rows(binary: str, rows: int, repeats: int, shm: Path, disk: Path) -> list[Row]:
    """The Rust side: brain's Arrow calls and arrow-rs Parquet on the same frame."""
    completed = subprocess.run(
        [binary, "--rows", str(rows), "--repeats", str(repeats), "--shm-dir", str(shm), "--disk-dir", str(disk)],
        check=True, capture_output=True, text=True,
    )
    out = []
    for line in completed.stdout.splitlines():
        record = json.loads(line)
        out.append(Row(record["obj"], record["nbytes"], record["op"], record["method"], record["where"], record["times"]))
    return out


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" or n == int(n) else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} GiB"


def human_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.3f} s"


def ratios(rows: list[Row]) -> dict[int, dict[str, str]]:
    """For each row: how Parquet compares to it (same object, same op kind), and it to memcpy."""
    out: dict[int, dict[str, str]] = {}
    for i, row in enumerate(rows):
        same = [r for r in rows if r.obj == row.obj]
        parquet = [r for r in same if r.op == row.op and r.method.startswith("Parquet") and "/dev/shm" in r.method
                   and ("2 columns" in r.method) == ("2 columns" in row.method)]
        memcpy = [r for r in same if r.op == "memcpy" and "pre-faulted" in r.method]
        entry = {}
        if parquet and row.method.startswith("brain") and "first" not in row.method:
            ratio = parquet[0].median / row.median
            entry["parquet"] = (
                f"{ratio:,.0f}x faster" if ratio >= 10
                else f"{ratio:.1f}x faster" if ratio >= 1
                else f"{1 / ratio:.1f}x slower"
            )
        if memcpy and row.op == "write" and not row.method.startswith("Parquet"):
            entry["memcpy"] = f"{100 * memcpy[0].median / row.median:.0f}% of memcpy speed"
        out[i] = entry
    return out


def markdown(rows: list[Row]) -> str:
    lines = [
        "| object | operation | where | median | spread (p10–p90) | vs Parquet (/dev/shm) | vs memcpy |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    extra = ratios(rows)
    for i, row in enumerate(rows):
        low, high = row.spread()
        lines.append(
            f"| {row.obj} | {row.method} | {row.where} | {human_time(row.median)} | "
            f"{human_time(low)} – {human_time(high)} | {extra[i].get('parquet', '')} | {extra[i].get('memcpy', '')} |"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)
    methods: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if "first in process" in row.method or "2 columns" in row.method:
            continue
        key = f"{row.method} ({row.where})" if row.where != "same process" else row.method
        methods.setdefault(key, []).append((row.nbytes, row.median))
    for key, points in sorted(methods.items()):
        points.sort()
        xs, ys = zip(*points)
        style = "-o" if key.startswith("brain") else ("--s" if "Parquet" in key else ":^")
        ax.plot(xs, ys, style, label=key)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("object size (bytes)")
    ax.set_ylabel("median time (seconds)")
    ax.set_title("brain vs Parquet vs memcpy: time against object size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": f"{int(mem) / 1024**2:.0f} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pq.__name__ and __import__("pyarrow").__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description="brain vs Parquet vs memcpy, in one run")
    parser.add_argument("--quick", action="store_true", help="1M-row frame and arrays up to 64 MiB (< 2 minutes)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 5 quick, 7 full)")
    parser.add_argument("--out", default="bench-results", help="directory for results.md, .json and .png")
    parser.add_argument("--rust-bin", default=None, help="the brain-bench `compare` binary, for the Rust rows")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 7)
    rows_in_frame = 1_000_000 if args.quick else 10_000_000
    array_sizes = [1 << 20, 64 << 20] if args.quick else [1 << 20, 64 << 20, 1 << 30]

    started = time.perf_counter()
    shm = Path(tempfile.mkdtemp(prefix="brain-compare-", dir="/dev/shm"))
    disk = Path(tempfile.mkdtemp(prefix="brain-compare-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        brain = Brain(path=shm / "store")
        rows: list[Row] = []
        for nbytes in array_sizes:
            print(f"arrays: {human_bytes(nbytes)} ...", file=sys.stderr)
            rows += bench_array(nbytes, repeats, shm, brain)
        print(f"frame: {rows_in_frame:,} rows ...", file=sys.stderr)
        rows += bench_frame(rows_in_frame, repeats, shm, disk, brain)
        if args.rust_bin:
            print("Rust: brain and arrow-rs Parquet ...", file=sys.stderr)
            rows += rust_rows(args.rust_bin, rows_in_frame, repeats, shm, disk)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    command = "python brain-bench/compare.py" + (" --quick" if args.quick else "")
    info = machine()
    header = (f"Measured {time.strftime('%Y-%m-%d')} with `{command}` on {info['cpu']}, {info['cores']} cores, "
              f"{info['memory']}, Linux {info['kernel']}; median of {repeats} runs.\n\n")
    (out / "results.md").write_text(header + table + "\n")
    (out / "results.json").write_text(json.dumps(
        {"command": command, "machine": info, "repeats": repeats,
         "rows": [{**asdict(r), "median": r.median, "p10": r.spread()[0], "p90": r.spread()[1]} for r in rows]},
        indent=2))
    plot(rows, out / "results.png")
    print(header + table)
    print(f"\nwritten: {out}/results.md, results.json, results.png ({time.perf_counter() - started:.0f} s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
