"""Small objects: the figures of the small-object table, in one run.

    .venv/bin/python brain-bench/small_objects.py [--million]

Measures, on a store of its own in /dev/shm (removed at the end, even on
failure), from Python with 20-byte str values:

- set, replacing, over 5,000 names; set of a new name;
- get, round-robin over 5,000 names never read before in that process
  (a fresh process each round);
- names() of 1,000 and of 100,000 names, in a fresh process and again;
- with --million: shared memory per object over 1,000,000 objects, set
  and get with 1,000,000 names in the namespace against 5,000, and the
  1,000,000 names dumped, wiped and restored (every value checked).

Each figure is the median of its rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import brain

VALUE = "x" * 20


def per_op(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def set_rounds(b: brain.Brain, names: list[str], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for name in names:
            b[name] = VALUE
        out.append(per_op(time.perf_counter() - start, len(names)))
    return out


def get_rounds(b: brain.Brain, names: list[str], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for name in names:
            b[name]
        out.append(per_op(time.perf_counter() - start, len(names)))
    return out


FRESH_GET = """
import sys, time, brain
b = brain.Brain(path=sys.argv[1], namespace=sys.argv[2])
names = [f"key{i:07d}" for i in range(int(sys.argv[3]))]
start = time.perf_counter()
for name in names:
    b[name]
print((time.perf_counter() - start) / len(names) * 1e6)
"""

FRESH_NAMES = """
import sys, time, brain
b = brain.Brain(path=sys.argv[1], namespace=sys.argv[2])
start = time.perf_counter(); first = b.names(); middle = time.perf_counter(); again = b.names()
end = time.perf_counter()
assert len(first) == len(again) == int(sys.argv[3]), (len(first), sys.argv[3])
print((middle - start) * 1e3, (end - middle) * 1e3)
"""


def fresh(code: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def fill(b: brain.Brain, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        b[f"key{i:07d}"] = VALUE
    return per_op(time.perf_counter() - start, count)


def shm_used() -> int:
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def row(label: str, values: list[float], unit: str, target: str) -> None:
    shown = f"{statistics.median(values):.2f} {unit}" if values else "-"
    spread = f"{min(values):.2f} to {max(values):.2f}" if len(values) > 1 else ""
    print(f"| {label} | {shown} | {spread} | {target} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--million", action="store_true", help="also fill 1,000,000 names")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="brain-bench-small-", dir="/dev/shm")
    try:
        path = os.path.join(root, "store")
        b = brain.Brain(path=path, namespace="k5000")
        names = [f"key{i:07d}" for i in range(5000)]
        new_name = [fill(b, 5000)]
        replace = set_rounds(b, names, args.rounds)
        fresh_get = [fresh(FRESH_GET, path, "k5000", "5000")[0] for _ in range(args.rounds)]
        listings: dict[int, list[list[float]]] = {}
        for count in (1000, 100_000):
            ns = brain.Brain(path=path, namespace=f"list{count}")
            fill(ns, count)
            listings[count] = [fresh(FRESH_NAMES, path, f"list{count}", str(count)) for _ in range(args.rounds)]
        print("| measurement | median | range | target |")
        print("|---|---:|---|---|")
        row("set of a 20-byte str, a new name (5,000)", new_name, "µs", "")
        row("set of a 20-byte str, replacing (5,000 names)", replace, "µs", "≤ 5 µs")
        row("get, 5,000 names round-robin, fresh process", fresh_get, "µs", "≤ 2 µs")
        for count, runs in listings.items():
            target = "≤ 0.2 ms" if count == 1000 else "≤ 20 ms"
            row(f"names() of {count:,}, fresh process", [r[0] for r in runs], "ms", target)
            row(f"names() of {count:,}, again", [r[1] for r in runs], "ms", target)
        if args.million:
            big = brain.Brain(path=path, namespace="million")
            before = shm_used()
            filled = fill(big, 1_000_000)
            per_object = (shm_used() - before) / 1_000_000
            sample = [f"key{i:07d}" for i in range(0, 1_000_000, 200)]
            replace_m = set_rounds(big, sample, args.rounds)
            get_m = get_rounds(big, sample, args.rounds)
            get_5k = get_rounds(b, names, args.rounds)
            row("set of a new name, filling 1,000,000", [filled], "µs", "")
            row("shared memory per object, 1,000,000 objects", [per_object], "B", "≤ 256 B")
            row("set, replacing, 1,000,000 names in the namespace", replace_m, "µs", "within 10% of 5,000")
            row("get, 1,000,000 names in the namespace", get_m, "µs", "within 10% of 5,000")
            row("get, 5,000 names in the namespace (same process)", get_5k, "µs", "")
            dump_dir = tempfile.mkdtemp(prefix="brain-bench-small-dump-")
            try:
                start = time.perf_counter()
                report = big.dump(os.path.join(dump_dir, "d"), namespace="million", progress=False)
                dumped = time.perf_counter() - start
                big.store.remove_namespace("million")
                assert big.names() == []
                start = time.perf_counter()
                big.restore(os.path.join(dump_dir, "d"), progress=False)
                restored = time.perf_counter() - start
                names_back = big.names()
                assert len(names_back) == 1_000_000, len(names_back)
                assert all(big[n] == VALUE for n in names_back)
                print(f"| dump of 1,000,000 names | {dumped:.1f} s | {report} | |")
                print(f"| restore of 1,000,000 names, every value checked after | {restored:.1f} s | | |")
            finally:
                shutil.rmtree(dump_dir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
