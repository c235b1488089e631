"""How brain's costs grow: with the names around, with readers, with the store.

    .venv-peers/bin/python brain-bench/scaling.py --write-docs     # (make bench-peers builds the venv)

1. A large put (64 MiB array, replacing) and get with 0, 1,000 and 100,000
   other (small) objects in the same namespace.
2. 1, 2, 4 and 8 reader processes reading the benchmark frame at once: each
   gets it as a pyarrow Table and sums every numeric column (a pass over
   560 MB); aggregate bandwidth is bytes read by all readers over the wall
   time from the common start to the last one done.
3. Dump and restore time against the store's size: 64 MiB, 256 MiB and
   1 GiB of arrays, dumped to disk (/tmp) and restored into an empty store.

Everything runs in temporary stores and directories removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import make_array, make_frame  # noqa: E402

from brain import Brain  # noqa: E402

MiB = 1 << 20
DOCS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def names_around(store: str, rounds: int) -> list[str]:
    rows = []
    b = Brain(path=store)
    arr = make_array(64 * MiB)
    b["big"] = arr
    b["big"] = arr
    have = 0
    for others in (0, 1_000, 100_000):
        for i in range(have, others):
            b[f"small-{i:06d}"] = i
        have = others
        puts, gets = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            b["big"] = arr
            puts.append(time.perf_counter() - t)
            b.store.clear_cache()  # a get that opens and maps the file
            t = time.perf_counter()
            got = b["big"]
            gets.append(time.perf_counter() - t)
            del got
        rows.append(f"| {others:,} | {fmt(statistics.median(puts))} | {fmt(statistics.median(gets))} |")
    return rows


def reader(store: str, start: Any, ready: Any, out: Any) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    b = Brain(path=store)
    table = b.get("frame", as_arrow=True)  # the first get loads pyarrow's IPC reader: not timed
    del table
    b.store.clear_cache()
    ready.wait()
    start.wait()
    t = time.perf_counter()
    table = b.get("frame", as_arrow=True)
    nbytes = 0
    for name in table.column_names:
        column = table[name]
        if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
            pc.sum(column)
            nbytes += column.nbytes
    out.put((t, time.perf_counter(), nbytes))


def readers(store: str, rows_in_frame: int, rounds: int) -> list[str]:
    b = Brain(path=store)
    b["frame"] = make_frame(rows_in_frame)
    ctx = mp.get_context("spawn")
    out_rows = []
    for n in (1, 2, 4, 8):
        rates = []
        for _ in range(rounds):
            start, ready, out = ctx.Barrier(n + 1), ctx.Barrier(n + 1), ctx.Queue()
            procs = [ctx.Process(target=reader, args=(store, start, ready, out)) for _ in range(n)]
            for p in procs:
                p.start()
            ready.wait()
            start.wait()
            results = [out.get(timeout=300) for _ in procs]
            for p in procs:
                p.join()
            first = min(r[0] for r in results)
            last = max(r[1] for r in results)
            total = sum(r[2] for r in results)
            rates.append(total / (last - first))
        rate = statistics.median(rates)
        out_rows.append(f"| {n} | {rate / 1e9:.1f} GB/s | {rate / n / 1e9:.1f} GB/s |")
    return out_rows


def persistence(root: Path, rounds: int) -> list[str]:
    rows = []
    for total in (64 * MiB, 256 * MiB, 1024 * MiB):
        dumps, restores = [], []
        for r in range(rounds):
            src = root / f"src-{total}-{r}"
            b = Brain(path=str(src))
            pieces = max(1, total // (64 * MiB))
            for i in range(pieces):
                b[f"a{i}"] = make_array(total // pieces, seed=i)
            disk = Path(tempfile.mkdtemp(prefix="brain-scaling-", dir="/tmp"))
            try:
                t = time.perf_counter()
                b.dump(str(disk / "dump"))
                dumps.append(time.perf_counter() - t)
                dst = Brain(path=str(root / f"dst-{total}-{r}"))
                t = time.perf_counter()
                dst.restore(str(disk / "dump"))
                restores.append(time.perf_counter() - t)
                dst.close()
            finally:
                shutil.rmtree(disk, ignore_errors=True)
            b.close()
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(root / f"dst-{total}-{r}", ignore_errors=True)
        d, s = statistics.median(dumps), statistics.median(restores)
        rows.append(
            f"| {total // MiB:,} MiB | {fmt(d)} | {total / d / 1e9:.2f} GB/s | {fmt(s)} | {total / s / 1e9:.2f} GB/s |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frame-rows", type=int, default=10_000_000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="brain-scaling-", dir="/dev/shm"))
    started = time.strftime("%Y-%m-%d %H:%M")
    try:
        print("names around ...", flush=True)
        around = names_around(str(root / "names"), args.rounds)
        print("readers ...", flush=True)
        many = readers(str(root / "readers"), args.frame_rows, max(3, args.rounds // 2))
        print("dump and restore ...", flush=True)
        persist = persistence(root, max(2, args.rounds // 2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(
        [
            f"One run of `brain-bench/scaling.py`, {started}, {os.cpu_count()} cores, medians of {args.rounds} rounds.",
            "",
            "A 64 MiB array, replaced and read (a read that opens and maps the file) beside other objects in its namespace:",
            "",
            "| other objects | put, replacing | get |",
            "|---:|---:|---:|",
            *around,
            "",
            f"Readers reading the {args.frame_rows:,}-row frame at once (a pyarrow Table, every 64-bit column summed):",
            "",
            "| reader processes | aggregate | per reader |",
            "|---:|---:|---:|",
            *many,
            "",
            "Dump (zstd level 3, to /tmp on disk) and restore (into an empty store) against the store's size:",
            "",
            "| store | dump | dump rate | restore | restore rate |",
            "|---:|---:|---:|---:|---:|",
            *persist,
        ]
    )
    print(text)
    if args.write_docs:
        doc = DOCS.read_text()
        section = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + section + doc[doc.index(END) + len(END):]
        else:
            doc += "\n" + section + "\n"
        DOCS.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
