"""brain beside its peers, on the same data, in one run.

    make bench-peers      # = .venv-peers/bin/python brain-bench/peers.py --write-docs

The peers, each through its own client, in this process: Ray's object
store (``ray.put`` / ``ray.get``, ``ray.init(num_cpus=2,
object_store_memory=...)``), Redis through redis-py with hiredis (a
``redis-server`` started on a free loopback port, stopped at the end),
Parquet on /dev/shm (pyarrow), and ``multiprocessing.shared_memory``. The
workloads are brain-bench's (workloads.py): a short str, float64 arrays of
64 MiB and 1 GiB, the 10-million-row 8-column frame, and 1,000 names.

brain runs as a user would open it and, beside that, with
``Brain(preallocate=...)`` (``--preallocate``, default 6G): the memory
handed over up front, as Ray's ``object_store_memory`` and Plasma's
``-m`` are; each has its own ratio to the best peer.

Beside them, the physical floors, measured in the same run: memcpy into
memory already faulted in, on one core and on all of them; ``write()``
into a fresh tmpfs file and into one whose pages are allocated; and the
population of the page tables of an existing file (``MAP_POPULATE``).

Every round measures each system once per operation, systems in an order
that rotates between rounds; a row shows the median over rounds and
brain's ratio to the best peer (below 1: brain is faster). "Replacing"
writes a name that holds an object of the same size (for Ray, a put after
the previous object's reference was dropped; for shared memory, a copy
into the existing segment); "new name" writes a name that does not exist
(for Ray, a put while the previous objects are still referenced).
Everything is written into temporary stores, files and servers that are
removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import gc
import json
import mmap
import os
import pickle
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import die_with_parent, remove_scratch, scratch_dir  # noqa: E402
from workloads import make_array, make_frame  # noqa: E402

from brain import Brain  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
REDIS_MAX = 512 * MiB  # a Redis string holds at most 512 MB
SHORT = "a short text value"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"


def now() -> float:
    return time.perf_counter()


@dataclass
class Row:
    workload: str
    op: str
    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, system: str, seconds: float) -> None:
        self.times.setdefault(system, []).append(seconds)


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ systems


class System:
    """One system under test: puts and gets of named values."""

    name = "?"

    def supports(self, workload: str, value: Any) -> bool:
        return True

    def prepare(self, value: Any) -> None:
        """Told the value the next puts store (a helper process builds its own)."""

    def put(self, key: str, value: Any) -> None:
        raise NotImplementedError

    def get(self, key: str, kind: str) -> Any:
        raise NotImplementedError

    def drop(self, key: str) -> None:
        """Forgets `key` (outside any timing)."""

    def names(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BrainSystem(System):
    name = "brain"

    def __init__(self, root: Path, **options: Any) -> None:
        self.brain = Brain(path=str(root / "brain-store"), **options)

    def put(self, key: str, value: Any) -> None:
        self.brain[key] = value

    def get(self, key: str, kind: str) -> Any:
        if kind == "arrow":
            return self.brain.get(key, as_arrow=True)
        return self.brain[key]

    def drop(self, key: str) -> None:
        self.brain.forget(key)

    def names(self) -> list[str]:
        return self.brain.names()


class RaySystem(System):
    name = "Ray"

    def __init__(self, store_bytes: int) -> None:
        import ray

        self.ray = ray
        ray.init(
            num_cpus=2,
            object_store_memory=store_bytes,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
        )
        self.refs: dict[str, Any] = {}

    def supports(self, workload: str, value: Any) -> bool:
        return True

    def put(self, key: str, value: Any) -> None:
        # A name's previous object goes when its reference does: drop it
        # first, as a program replacing a value would.
        self.refs.pop(key, None)
        self.refs[key] = self.ray.put(value)

    def get(self, key: str, kind: str) -> Any:
        return self.ray.get(self.refs[key])

    def drop(self, key: str) -> None:
        self.refs.pop(key, None)

    def names(self) -> list[str]:
        return sorted(self.refs)

    def close(self) -> None:
        self.refs.clear()
        self.ray.shutdown()


class RedisSystem(System):
    name = "Redis"

    def __init__(self, root: Path) -> None:
        import redis

        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir()
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = now() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if now() > deadline:
                    raise
                time.sleep(0.05)
        self.kinds: dict[str, tuple[str, Any]] = {}

    def supports(self, workload: str, value: Any) -> bool:
        if isinstance(value, np.ndarray):
            return value.nbytes < REDIS_MAX
        if isinstance(value, pd.DataFrame):
            return False  # pickled, the frame passes Redis's 512 MB string limit
        return True

    def put(self, key: str, value: Any) -> None:
        if isinstance(value, np.ndarray):
            self.kinds[key] = ("array", value.dtype)
            self.client.set(key, memoryview(value).cast("B"))
        else:
            self.kinds[key] = ("text", None)
            self.client.set(key, value)

    def get(self, key: str, kind: str) -> Any:
        raw = self.client.get(key)
        what, dtype = self.kinds[key]
        if what == "array":
            return np.frombuffer(raw, dtype=dtype)
        return raw.decode()

    def drop(self, key: str) -> None:
        self.client.delete(key)

    def names(self) -> list[str]:
        return sorted(k.decode() for k in self.client.scan_iter(count=10_000))

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class HelperSystem(System):
    """A system run by a helper process (another virtualenv, another build):
    each operation is timed in the helper, around the client's own call."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, preexec_fn=die_with_parent
        )

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}'s helper ended (exit {self.proc.wait()})")
        return dict(json.loads(line))

    def prepare(self, value: Any) -> None:
        if isinstance(value, np.ndarray):
            spec: dict[str, Any] = {"kind": "array", "nbytes": value.nbytes}
        elif isinstance(value, pd.DataFrame):
            spec = {"kind": "frame", "rows": len(value)}
        else:
            spec = {"kind": "text", "text": value}
        self.ask({"load": spec})

    def put(self, key: str, value: Any) -> float:  # type: ignore[override]
        return float(self.ask({"put": key})["s"])

    def get(self, key: str, kind: str) -> float:
        return float(self.ask({"get": key, "kind": kind})["s"])

    def drop(self, key: str) -> None:
        self.ask({"drop": key})

    def names(self) -> float:  # type: ignore[override]
        return float(self.ask({"names": True})["s"])

    def close(self) -> None:
        try:
            self.ask({"quit": True})
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class PlasmaSystem(HelperSystem):
    """Apache Plasma (pyarrow 11, in its own virtualenv): a plasma_store and
    the helper plasma_peer.py."""

    def __init__(self, python: str, root: Path, store_bytes: int) -> None:
        store = Path(python).parent / "plasma_store"
        self.socket = root / "plasma.sock"
        self.store = subprocess.Popen(
            [str(store), "-m", str(store_bytes), "-s", str(self.socket)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = now() + 20
        while not self.socket.exists():
            if now() > deadline or self.store.poll() is not None:
                raise RuntimeError("plasma_store did not start")
            time.sleep(0.05)
        here = Path(__file__).resolve().parent
        super().__init__("Plasma", [python, str(here / "plasma_peer.py"), str(self.socket)])

    def close(self) -> None:
        super().close()
        self.store.terminate()
        try:
            self.store.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.store.kill()


class ParquetSystem(System):
    name = "Parquet"

    def __init__(self, root: Path) -> None:
        self.dir = root / "parquet"
        self.dir.mkdir()

    def supports(self, workload: str, value: Any) -> bool:
        return isinstance(value, (np.ndarray, pd.DataFrame))

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.parquet"

    def put(self, key: str, value: Any) -> None:
        if isinstance(value, np.ndarray):
            pq.write_table(pa.table({"x": value}), self.path(key), compression="none")
        else:
            value.to_parquet(self.path(key), compression="none")

    def get(self, key: str, kind: str) -> Any:
        if kind == "array":
            return pq.read_table(self.path(key)).column(0).to_numpy()
        if kind == "arrow":
            return pq.read_table(self.path(key))
        return pd.read_parquet(self.path(key))

    def drop(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class SharedMemorySystem(System):
    name = "shared_memory"

    def __init__(self) -> None:
        self.segments: dict[str, tuple[shared_memory.SharedMemory, np.ndarray]] = {}

    def supports(self, workload: str, value: Any) -> bool:
        return isinstance(value, np.ndarray)

    def put(self, key: str, value: np.ndarray) -> None:
        held = self.segments.get(key)
        if held is not None and held[0].size >= value.nbytes:
            view = held[1]  # replacing: copy into the segment the name has
        else:
            self.drop(key)
            seg = shared_memory.SharedMemory(create=True, size=value.nbytes)
            view = np.ndarray(value.shape, value.dtype, buffer=seg.buf)
            self.segments[key] = (seg, view)
        np.copyto(view, value)

    def get(self, key: str, kind: str) -> Any:
        # Another process attaches by name: open and map the segment.
        seg = shared_memory.SharedMemory(name=self.segments[key][0].name)
        view = self.segments[key][1]
        out = np.ndarray(view.shape, view.dtype, buffer=seg.buf)
        del out
        seg.close()
        return view

    def drop(self, key: str) -> None:
        held = self.segments.pop(key, None)
        if held is not None:
            seg, view = held
            del view
            held = None
            gc.collect()
            seg.close()
            seg.unlink()

    def close(self) -> None:
        for key in list(self.segments):
            self.drop(key)


# ------------------------------------------------------------------ floors


def memcpy(dst: np.ndarray, src: np.ndarray, threads: int) -> float:
    if threads == 1:
        t = now()
        np.copyto(dst, src)
        return now() - t
    cuts = np.linspace(0, len(src), threads + 1).astype(int)
    workers = [
        threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b]))
        for a, b in zip(cuts[:-1], cuts[1:])
    ]
    t = now()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return now() - t


def write_file(path: Path, src: np.ndarray, fresh: bool) -> float:
    view = memoryview(src).cast("B")
    piece = 64 * MiB
    if fresh:
        path.unlink(missing_ok=True)
        t = now()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    else:
        fd = os.open(path, os.O_WRONLY)
        t = now()
    try:
        for at in range(0, len(view), piece):
            os.pwrite(fd, view[at : at + piece], at)
    finally:
        os.close(fd)
    return now() - t


def populate(path: Path, nbytes: int) -> float:
    fd = os.open(path, os.O_RDWR)
    try:
        t = now()
        m = mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        took = now() - t
        m.close()
    finally:
        os.close(fd)
    return took


# ------------------------------------------------------------------ the run


def measure(fn: Callable[[], Any]) -> float:
    t = now()
    out = fn()
    took = now() - t
    # A helper process times the call itself, without the pipe's round trip.
    if isinstance(out, float):
        return out
    del out
    return took


def run_value(
    rows: dict[tuple[str, str], Row],
    systems: list[System],
    workload: str,
    value: Any,
    rounds: int,
    gets: list[tuple[str, str]],
) -> None:
    """Puts (replacing, new name) and gets of one value, every system, `rounds` times."""
    able = [s for s in systems if s.supports(workload, value)]
    for s in able:
        s.prepare(value)
        s.put("x", value)  # the name to replace
    for r in range(rounds):
        order = able[r % len(able):] + able[: r % len(able)]
        for s in order:
            rows.setdefault((workload, "put, replacing a name"), Row(workload, "put, replacing a name")).add(
                s.name, measure(lambda: s.put("x", value))
            )
        for s in order:
            key = f"new{r}"
            rows.setdefault((workload, "put, new name"), Row(workload, "put, new name")).add(
                s.name, measure(lambda: s.put(key, value))
            )
        for s in order:
            s.drop(f"new{r}")
        for op, kind in gets:
            for s in order:
                s.get("x", kind)  # the first read of a process is not what this measures
                rows.setdefault((workload, op), Row(workload, op)).add(s.name, measure(lambda: s.get("x", kind)))
    for s in able:
        s.drop("x")
    gc.collect()


def run_names(rows: dict[tuple[str, str], Row], systems: list[System], rounds: int) -> None:
    able = [s for s in systems if s.supports("1,000 names", SHORT)]
    for s in able:
        s.prepare(SHORT)
    for r in range(rounds):
        order = able[r % len(able):] + able[: r % len(able)]
        for s in order:
            t = now()
            helper_time = 0.0
            for i in range(1000):
                took = s.put(f"n{i:04d}", SHORT)
                helper_time += took if isinstance(took, float) else 0.0
            total = helper_time if isinstance(s, HelperSystem) else now() - t
            rows.setdefault(("1,000 names", "put each"), Row("1,000 names", "put each")).add(s.name, total)
        for s in order:
            rows.setdefault(("1,000 names", "list the names"), Row("1,000 names", "list the names")).add(
                s.name, measure(s.names)
            )
        for s in order:
            for i in range(1000):
                s.drop(f"n{i:04d}")


def run_floors(rows: dict[tuple[str, str], Row], root: Path, sizes: list[int], rounds: int) -> None:
    threads = os.cpu_count() or 1
    for nbytes in sizes:
        workload = f"float64 array {nbytes // MiB} MiB" if nbytes < GiB else f"float64 array {nbytes // GiB} GiB"
        src = make_array(nbytes)
        dst = np.empty_like(src)
        dst.fill(0)
        allocated = root / f"allocated-{nbytes}"
        with open(allocated, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, nbytes)
        fresh = root / f"fresh-{nbytes}"
        for _ in range(rounds):
            for op, fn in [
                ("floor: memcpy, 1 core", lambda: memcpy(dst, src, 1)),
                (f"floor: memcpy, {threads} cores", lambda: memcpy(dst, src, threads)),
                ("floor: write() into a fresh tmpfs file", lambda: write_file(fresh, src, True)),
                ("floor: write() into allocated tmpfs pages", lambda: write_file(allocated, src, False)),
                ("floor: populate the page tables of an existing file", lambda: populate(allocated, nbytes)),
            ]:
                rows.setdefault((workload, op), Row(workload, op)).add("floor", fn())
            fresh.unlink(missing_ok=True)
        allocated.unlink()
        del src, dst
        gc.collect()


PREALLOCATED = "brain, preallocated"


def table(rows: dict[tuple[str, str], Row], peers: list[str], variants: list[str]) -> str:
    columns = ["brain", *variants, *peers]
    # Ray and Plasma are handed their memory up front; brain with
    # preallocate= is the same set-up, so it gets a ratio of its own.
    ratios = ["brain", *(v for v in variants if v == PREALLOCATED)]
    head = "| workload | operation | " + " | ".join(columns) + " | best peer | "
    head += " | ".join(f"{name} ÷ best peer" for name in ratios) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 3 + len(ratios))]
    for (workload, op), row in rows.items():
        med = {k: statistics.median(v) for k, v in row.times.items()}
        if "floor" in med:
            cells = [fmt(med["floor"])] + [""] * (len(columns) - 1) + [""] * (1 + len(ratios))
            lines.append(f"| {workload} | {op} | " + " | ".join(cells) + " |")
            continue
        peer_med = {p: med[p] for p in peers if p in med}
        best = min(peer_med, key=lambda p: peer_med[p]) if peer_med else None
        cells = [fmt(med[c]) if c in med else "n/a" for c in columns]
        cells.append(best or "")
        for name in ratios:
            cells.append(f"**{med[name] / peer_med[best]:.2f}**" if best and name in med else "")
        lines.append(f"| {workload} | {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mount_huge(root: Path) -> Path | None:
    """A tmpfs with huge pages (``huge=within_size``), mounted under `root`;
    None (and why, printed) when it cannot be mounted."""
    path = root / "huge"
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6G,huge=within_size,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"no tmpfs with huge pages: {done.stderr.strip()}", file=sys.stderr)
        return None
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--big-rounds", type=int, default=5, help="rounds for the 1 GiB array and the frame")
    parser.add_argument("--frame-rows", type=int, default=10_000_000)
    parser.add_argument("--no-gib", action="store_true", help="leave out the 1 GiB array")
    parser.add_argument("--only", default="", help="comma-separated systems to run (default: all)")
    parser.add_argument("--plasma-python", help="the Python of a virtualenv with pyarrow 11 (Plasma)")
    parser.add_argument("--baseline", help="a directory holding another build's brain package, measured too")
    parser.add_argument("--huge", action="store_true", help="also brain on a tmpfs mounted with huge=within_size (root)")
    parser.add_argument(
        "--preallocate",
        default="6G",
        help="also brain with Brain(preallocate=SIZE), as Ray and Plasma get their object store's memory "
        "up front (default 6G, as theirs; 0: leave it out)",
    )
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    args = parser.parse_args()

    root = scratch_dir("brain-peers-")
    systems: list[System] = []
    notes: list[str] = []
    rows: dict[tuple[str, str], Row] = {}
    started = time.strftime("%Y-%m-%d %H:%M")
    try:
        wanted = set(filter(None, args.only.split(",")))

        def want(name: str) -> bool:
            return not wanted or name in wanted

        systems.append(BrainSystem(root))
        if args.preallocate not in ("", "0"):
            (root / "preallocated").mkdir()
            preallocated = BrainSystem(root / "preallocated", preallocate=args.preallocate)
            preallocated.name = PREALLOCATED
            systems.append(preallocated)
        if args.baseline:
            env = dict(os.environ, PYTHONPATH=args.baseline)
            here = Path(__file__).resolve().parent
            systems.append(HelperSystem("brain before", [sys.executable, str(here / "brain_peer.py")], env))
        if args.huge:
            huge = mount_huge(root)
            if huge is not None:
                on_huge = BrainSystem(huge)
                on_huge.name = "brain, huge pages"
                systems.append(on_huge)
                del on_huge  # the list holds the only reference: unmounting needs it gone
        if args.plasma_python:
            try:
                systems.append(PlasmaSystem(args.plasma_python, root, 6 * GiB))
            except (OSError, RuntimeError) as err:
                notes.append(f"Plasma not measured: {err}")
        if want("Ray"):
            systems.append(RaySystem(store_bytes=6 * GiB))
        if want("Redis"):
            systems.append(RedisSystem(root))
        if want("Parquet"):
            systems.append(ParquetSystem(root))
        if want("shared_memory"):
            systems.append(SharedMemorySystem())
        peers = [s.name for s in systems if not s.name.startswith("brain")]
        variants = [s.name for s in systems if s.name.startswith("brain") and s.name != "brain"]

        print("short str ...", flush=True)
        run_value(rows, systems, "short str", SHORT, args.rounds * 20, [("get", "text")])
        sizes = [64 * MiB] + ([] if args.no_gib else [GiB])
        for nbytes in sizes:
            label = f"float64 array {nbytes // MiB} MiB" if nbytes < GiB else f"float64 array {nbytes // GiB} GiB"
            print(f"{label} ...", flush=True)
            arr = make_array(nbytes)
            rounds = args.rounds if nbytes < GiB else args.big_rounds
            run_value(rows, systems, label, arr, rounds, [("get", "array")])
            del arr
        print(f"frame, {args.frame_rows:,} rows ...", flush=True)
        frame = make_frame(args.frame_rows)
        label = f"frame, {args.frame_rows:,} rows"
        run_value(rows, systems, label, frame, args.big_rounds, [("get as pandas", "pandas"), ("get as Arrow", "arrow")])
        del frame
        print("1,000 names ...", flush=True)
        run_names(rows, systems, args.rounds)
        while systems:
            systems.pop().close()
        print("floors ...", flush=True)
        run_floors(rows, root, sizes, args.rounds)
    finally:
        while systems:
            system = systems.pop()
            try:
                system.close()
            except Exception as err:  # noqa: BLE001 - cleanup must go on
                print(f"closing {system.name}: {err}", file=sys.stderr)
            del system
        gc.collect()  # the Brains' mappings go, so the tmpfs can be unmounted
        remove_scratch(root)

    import ray

    out = table(rows, peers, variants)
    if notes:
        out += "\n\n" + "\n".join(f"- {n}" for n in notes)
    print(out)
    if args.json:
        args.json.write_text(json.dumps({f"{w} | {o}": r.times for (w, o), r in rows.items()}, indent=1))
    if args.write_docs:
        versions = (
            f"Ray {ray.__version__}, redis-py {__import__('redis').__version__} with hiredis, "
            f"pyarrow {pa.__version__}, pandas {pd.__version__}, numpy {np.__version__}, "
            f"Python {platform.python_version()}"
        )
        section = (
            f"{BEGIN}\nOne run of `make bench-peers`, {started}, {os.cpu_count()} cores "
            f"({versions}); medians of {args.rounds} rounds ({args.big_rounds} for the 1 GiB "
            f"array and the frame; {args.rounds * 20} for the short str):\n\n{out}\n{END}"
        )
        text = DOCS.read_text()
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
        else:
            text += "\n" + section + "\n"
        DOCS.write_text(text)
        print(f"written into {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
