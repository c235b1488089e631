"""brain on Redis against redis-py with hiredis, in one run, on one redis-server.

    python brain-bench/redis_bench.py [--quick] [--write-docs]

Starts its own redis-server on a free loopback port (no persistence, bulk
strings up to 2 GB so the peer can store 1 GiB in one key) and stops it at
the end. The peer is what users have today: redis-py with hiredis doing a
plain SET and GET of the pickled bytes of the same value (pickling is left
out of its times: the peer's figures are only the transfer). brain's
figures are whole calls: ``brain[name] = value`` and ``brain[name]``,
encoding and decoding included.

Rows, for 1 MiB, 64 MiB and 1 GiB numpy arrays and the 10-million-row frame:

- set: brain's write (its chunks, the last batch of them in one pipeline
  with the publish script) against SET;
- cold get: a read on a host that has not cached this version (the
  version is replaced before every repetition), into this host's shared
  memory, against GET;
- cold get, no cache: the same into private memory (``cache=False``);
- warm get: a repeated read through the host cache, against a get from a
  local shared-memory store (the floor brain aims at);
- small values (100 bytes): set and get against SET and GET; brain's get
  strict (one round trip) and tracked (no round trip);
- the loopback socket: bytes through a TCP connection on 127.0.0.1 in the
  same run, the floor of any transfer.

Each figure is the median of repetitions interleaved with its peer's.
Run it on a release build (``make bench-redis`` builds one).

``--sets`` measures only sets of 100 B to 64 MiB (inline in the pointer
up to 256 KiB, chunks above) against SET, with the calling thread's
processor time and the server's time per set.

``--cluster`` measures only small values (100 bytes) on a three-node Redis
Cluster of its own (``redis-cli --cluster create``): a new name's set, a
replace, a delete and a strict get against redis-py's ``RedisCluster`` doing
``SET``, ``DEL`` and ``GET``, in rounds that alternate, and prints the
ratios: run it alternately with two builds to compare them.

``--small`` measures only the rows closest to redis-py's, the 1 MiB
cold get and set and the 100-byte set, in the same set-up, and prints their
ratios, and the processor time a cold get takes in the calling thread: run it alternately with two builds (``PYTHONPATH=`` pointing at
one of them) to compare them in one sitting.
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import die_with_parent, remove_scratch, scratch_dir  # noqa: E402
from workloads import make_frame  # noqa: E402

MiB = 1 << 20
DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- redis-bench: begin -->"
END = "<!-- redis-bench: end -->"


class Server:
    def __init__(self) -> None:
        self.dir = scratch_dir("brain-bench-redis-server-", tempfile.gettempdir())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--proto-max-bulk-len", "2gb", "--client-query-buffer-limit", "2gb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        wait_for_ping(self.port)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        remove_scratch(self.dir)


class Cluster:
    """Three redis-server nodes on free loopback ports, joined by
    ``redis-cli --cluster create``, in a scratch directory of their own."""

    def __init__(self) -> None:
        self.dir = scratch_dir("brain-bench-redis-cluster-", tempfile.gettempdir())
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            while len(self.ports) < 3:
                port = free_cluster_port()
                if port in self.ports:
                    continue
                node_dir = Path(self.dir) / str(port)
                node_dir.mkdir()
                self.procs.append(subprocess.Popen(
                    ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                     "--dir", str(node_dir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
                ))
                self.ports.append(port)
            for port in self.ports:
                wait_for_ping(port)
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 30
            while not all(
                "cluster_state:ok" in info and "cluster_slots_ok:16384" in info
                for info in (redis.Redis(port=p).execute_command("CLUSTER", "INFO").decode() for p in self.ports)
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not reach cluster_state:ok in 30 s")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        remove_scratch(self.dir)


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_for_ping(port: int) -> None:
    """Waits until the server on ``port`` answers, at most 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cluster_small(rounds: int = 1500) -> list[str]:
    """100-byte values on a three-node cluster: brain's set of a new name,
    replace, delete and strict get against redis-py's ``RedisCluster``
    (``SET`` of a new key, ``SET``, ``DEL``, ``GET``), alternating."""
    from brain import Brain
    from redis.cluster import RedisCluster

    cluster = Cluster()
    try:
        brain = Brain(url=cluster.url(), cache=False)
        strict = Brain(url=cluster.url(), cache=False, consistency="strict")
        peer = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        small = b"x" * 100
        brain["s"] = small
        strict["s"]  # its connections in place
        peer.set("s", small)
        counter = iter(range(10**9))
        names: dict[str, list[str]] = {"brain": [], "peer": []}

        def fresh(who: str) -> str:
            name = f"n{next(counter)}"
            names[who].append(name)
            return name

        def drop(who: str) -> None:
            # The delete takes the oldest name still set.
            name = names[who].pop(0)
            if who == "brain":
                del brain[name]
            else:
                peer.delete(name)

        rows = {
            "set of a new name": {"brain": lambda: brain.__setitem__(fresh("brain"), small),
                                  "peer": lambda: peer.set(fresh("peer"), small)},
            "replace": {"brain": lambda: brain.__setitem__("s", small), "peer": lambda: peer.set("s", small)},
            "delete": {"brain": lambda: drop("brain"), "peer": lambda: drop("peer")},
            "get, strict": {"brain": lambda: strict["s"], "peer": lambda: peer.get("s")},
        }
        lines = []
        for label, cases in rows.items():
            t = interleave(cases, rounds)
            lines.append(f"{label}: brain {show(t['brain'])}, redis-py {show(t['peer'])}, {t['brain'] / t['peer']:.2f}x")
        return lines
    finally:
        cluster.stop()


def loopback(nbytes: int) -> float:
    """Seconds to move ``nbytes`` through a loopback TCP connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    block = b"\x01" * (8 * MiB)

    def send() -> None:
        conn, _ = listener.accept()
        with conn:
            left = nbytes
            while left > 0:
                conn.sendall(block[: min(left, len(block))])
                left -= len(block)

    sender = threading.Thread(target=send)
    sender.start()
    sink = bytearray(8 * MiB)
    view = memoryview(sink)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started = time.perf_counter()
        got = 0
        while got < nbytes:
            n = conn.recv_into(view)
            if n == 0:
                break
            got += n
        elapsed = time.perf_counter() - started
    sender.join()
    listener.close()
    return elapsed


def interleave(cases: dict[str, Callable[[], Any]], rounds: int, before: Callable[[], Any] | None = None) -> dict[str, float]:
    """Median seconds of each case, the cases run in turn each round (``before`` untimed, before each)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            if before is not None:
                before()
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(ts) for name, ts in times.items()}


def sets(brain: Any, peer: redis.Redis) -> list[str]:
    """Sets of bytes from 100 B (inline in the pointer) to 64 MiB (chunks),
    against SET: the median of each, in blocks that alternate, the calling
    thread's processor time, and the server's time per set (INFO
    commandstats, reset before each block)."""
    lines = []
    for size, per_block in ((100, 50), (1024, 50), (4096, 50), (16384, 50), (65536, 50), (262144, 50),
                            (MiB, 20), (8 * MiB, 4), (64 * MiB, 1)):
        value = os.urandom(size)
        brain["v"] = value
        peer.set("p", value)
        times: dict[str, list[float]] = {"brain": [], "peer": []}
        cpu: dict[str, list[float]] = {"brain": [], "peer": []}
        server = {"brain": 0, "peer": 0}
        cases = {"brain": lambda: brain.__setitem__("v", value), "peer": lambda: peer.set("p", value)}
        for block in range(20):
            for who in ("brain", "peer") if block % 2 == 0 else ("peer", "brain"):
                peer.config_resetstat()
                for _ in range(per_block):
                    started, started_cpu = time.perf_counter(), time.thread_time()
                    cases[who]()
                    times[who].append(time.perf_counter() - started)
                    cpu[who].append(time.thread_time() - started_cpu)
                stats = peer.info("commandstats")
                server[who] += sum(v["usec"] for k, v in stats.items() if "config" not in k and "info" not in k)
        ours, theirs = statistics.median(times["brain"]), statistics.median(times["peer"])
        sets_made = 20 * per_block
        lines.append(
            f"{size} B: brain {show(ours)}, SET {show(theirs)}, {ours / theirs:.2f}x;"
            f" processor time {show(statistics.median(cpu['brain']))} against {show(statistics.median(cpu['peer']))};"
            f" server time per set {show(server['brain'] / sets_made / 1e6)} against {show(server['peer'] / sets_made / 1e6)}"
        )
    return lines


def chunk_sizes(port: int, total: int = 256 * MiB) -> list[str]:
    """What the chunk size costs: fetching ``total`` bytes as pipelined GETs of
    chunks of each size, and meanwhile the latency of another client's
    small GETs (a large reply is copied by the server's one thread)."""
    lines = [
        "| chunk size | fetch of 256 MiB | another client's GET, median | p99 | max |",
        "|---:|---:|---:|---:|---:|",
    ]
    big = redis.Redis(port=port)
    blob = np.random.default_rng(4).bytes(64 * MiB)
    for size in (1 * MiB, 4 * MiB, (8 * MiB) - 4096, 32 * MiB, 64 * MiB):
        keys = [f"chunk:{size}:{i}" for i in range(total // size)]
        for i, key in enumerate(keys):
            big.set(key, blob[: size] if size <= len(blob) else blob)
        stop = threading.Event()
        latencies: list[float] = []

        def probe() -> None:
            small = redis.Redis(port=port)
            small.set("probe", b"x")
            while not stop.is_set():
                started = time.perf_counter()
                small.get("probe")
                latencies.append(time.perf_counter() - started)
                time.sleep(0.0005)

        prober = threading.Thread(target=probe)
        prober.start()
        fetches = []
        for _ in range(3):
            started = time.perf_counter()
            for at in range(0, len(keys), 8):
                pipe = big.pipeline(transaction=False)
                for key in keys[at : at + 8]:
                    pipe.get(key)
                pipe.execute()
            fetches.append(time.perf_counter() - started)
        stop.set()
        prober.join()
        big.delete(*keys)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)]
        lines.append(
            f"| {size / MiB:.3g} MiB | {show(statistics.median(fetches))} | {show(statistics.median(latencies))} "
            f"| {show(p99)} | {show(latencies[-1])} |"
        )
    return lines


def clients(port: int, binary: str, rounds: int = 3) -> list[str]:
    """redis-rs's sync and async clients (``binary``: target/release/redis_client)
    against redis-py with hiredis, GETs of 8 MiB and 512 MiB, rounds interleaved."""
    peer = redis.Redis(port=port)
    times: dict[tuple[int, str], list[float]] = {}
    for _ in range(rounds):
        out = subprocess.run([binary, str(port), "3"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            mib, sync_t, async_t = line.split()
            times.setdefault((int(mib), "sync"), []).append(float(sync_t))
            times.setdefault((int(mib), "async"), []).append(float(async_t))
        for mib in (8, 512):
            peer.set("client-py", b"\x07" * (mib * MiB))
            for _ in range(3):
                started = time.perf_counter()
                value = peer.get("client-py")
                times.setdefault((mib, "redis-py"), []).append(time.perf_counter() - started)
                del value
            peer.delete("client-py")
    lines = [
        "| GET of | redis-rs sync | redis-rs async (multiplexed) | redis-py + hiredis | sync / redis-py |",
        "|---:|---:|---:|---:|---:|",
    ]
    for mib in (8, 512):
        t = {kind: statistics.median(times[(mib, kind)]) for kind in ("sync", "async", "redis-py")}
        lines.append(
            f"| {mib} MiB | {show(t['sync'])} | {show(t['async'])} | {show(t['redis-py'])} | {t['sync'] / t['redis-py']:.2f}x |"
        )
    return lines


def show(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 MiB and 64 MiB only, fewer rounds")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the benchmark frame")
    parser.add_argument("--chunks", action="store_true", help="only measure what the chunk size costs")
    parser.add_argument("--small", action="store_true", help="only the 1 MiB cold get and set and the 100 B set, as ratios")
    parser.add_argument("--sets", action="store_true", help="only sets of 100 B to 64 MiB against SET, with processor and server time")
    parser.add_argument("--cluster", action="store_true", help="only small values on a three-node cluster, as ratios")
    parser.add_argument("--clients", metavar="REDIS_CLIENT_BIN", help="only compare redis-rs's clients with redis-py")
    parser.add_argument(
        "--client-bin", metavar="REDIS_CLIENT_BIN", help="with --write-docs: also compare redis-rs's clients (this binary)"
    )
    args = parser.parse_args()

    if args.cluster:
        print("\n".join(cluster_small()))
        return 0
    server = Server()
    if args.chunks or args.clients:
        try:
            print("\n".join(chunk_sizes(server.port) if args.chunks else clients(server.port, args.clients)))
        finally:
            server.stop()
        return 0
    from brain import Brain

    shm = scratch_dir("brain-bench-redis-")
    rows: list[tuple[str, str, float, str, float]] = []
    try:
        url = f"redis://127.0.0.1:{server.port}"
        peer = redis.Redis(port=server.port)
        writer = Brain(url=url, cache=f"{shm}/writer-host")
        reader = Brain(url=url, cache=f"{shm}/reader-host")
        # Asks the server for the version on every read, so a read right
        # after another handle's write is of the new version, not cached yet.
        cold = Brain(url=url, cache=f"{shm}/reader-host", consistency="strict")
        uncached = Brain(url=url, cache=False)
        local = Brain(path=f"{shm}/local")

        if args.sets:
            print("\n".join(sets(uncached, peer)))
            return 0
        if args.small:
            value = np.random.default_rng(1).bytes(MiB)
            writer["v"] = value
            peer.set("v", value)
            reader["v"], uncached["v"]
            replace = lambda: writer.__setitem__("v", value)  # noqa: E731  a new version each time
            cold_get = interleave({"brain": lambda: cold["v"], "peer": lambda: peer.get("v")}, 200, before=replace)
            private = interleave({"brain": lambda: uncached["v"], "peer": lambda: peer.get("v")}, 200)
            big_set = interleave({"brain": replace, "peer": lambda: peer.set("v", value)}, 200)
            small = b"x" * 100
            writer["s"] = small
            peer.set("s", small)
            small_set = interleave({"brain": lambda: writer.__setitem__("s", small), "peer": lambda: peer.set("s", small)}, 3000)
            rows_small = (
                ("1 MiB cold get", cold_get),
                ("1 MiB cold get, cache=False", private),
                ("1 MiB set", big_set),
                ("100 B set", small_set),
            )
            for label, t in rows_small:
                print(f"{label}: brain {show(t['brain'])}, redis-py {show(t['peer'])}, {t['brain'] / t['peer']:.2f}x")
            # The calling thread's processor time (system calls and page
            # faults included): steadier than the wall clock on a busy machine.
            cpu = []
            for _ in range(200):
                replace()
                started = time.thread_time()
                cold["v"]
                cpu.append(time.thread_time() - started)
            print(f"1 MiB cold get, processor time of the calling thread: {show(statistics.median(cpu))}")
            return 0
        link = statistics.median(loopback(512 * MiB) for _ in range(3)) / 512  # seconds per MiB
        rows.append(("loopback socket, 1 GiB", "TCP on 127.0.0.1", link * 1024, "", 0.0))

        values: list[tuple[str, Any, int]] = [("1 MiB", np.random.default_rng(1).bytes(MiB), 15)]
        values.append(("64 MiB", np.frombuffer(np.random.default_rng(2).bytes(64 * MiB), dtype=np.uint8), 7))
        if not args.quick:
            values.append(("1 GiB", np.frombuffer(np.random.default_rng(3).bytes(1024 * MiB), dtype=np.uint8), 3))
            values.append((f"{args.rows // 1_000_000}M-row frame", make_frame(args.rows), 3))
        for label, value, rounds in values:
            data = pickle.dumps(value, protocol=5)
            size = len(data)
            floor = link * size / MiB
            local["v"] = value
            t = interleave({"brain": lambda: writer.__setitem__("v", value), "peer": lambda: peer.set("v", data)}, rounds)
            rows.append((f"{label}: set", "SET", t["brain"], show(t["peer"]), t["brain"] / t["peer"]))
            def replace() -> None:
                # Every write is a new version, which no host has cached.
                writer["v"] = value

            t = interleave({"brain": lambda: cold["v"], "peer": lambda: peer.get("v")}, rounds, before=replace)
            rows.append((f"{label}: cold get", "GET", t["brain"], show(t["peer"]), t["brain"] / t["peer"]))
            t = interleave({"brain": lambda: uncached["v"], "peer": lambda: peer.get("v")}, rounds)
            rows.append((f"{label}: cold get, cache=False", "GET", t["brain"], show(t["peer"]), t["brain"] / t["peer"]))
            rows.append((f"{label}: loopback floor", "", floor, "", 0.0))
            reader["v"]
            warm = interleave({"brain": lambda: reader["v"], "local": lambda: local["v"]}, max(rounds, 30))
            rows.append((f"{label}: warm get", "local shm get", warm["brain"], show(warm["local"]), warm["brain"] / warm["local"]))
            del value, data
            peer.delete("v")
            writer.forget("v")
            local.forget("v")

        small = b"x" * 100
        strict = Brain(url=url, cache=f"{shm}/reader-host", consistency="strict")
        writer["s"] = small
        peer.set("s", small)
        t = interleave({"brain": lambda: writer.__setitem__("s", small), "peer": lambda: peer.set("s", small)}, 2000)
        rows.append(("100 B: set", "SET", t["brain"], show(t["peer"]), t["brain"] / t["peer"]))
        t = interleave({"brain": lambda: strict["s"], "peer": lambda: peer.get("s")}, 2000)
        rows.append(("100 B: get, strict", "GET", t["brain"], show(t["peer"]), t["brain"] / t["peer"]))
        reader["s"]
        t = interleave({"brain": lambda: reader["s"], "peer": lambda: peer.get("s")}, 2000)
        rows.append(("100 B: get, tracked", "GET", t["brain"], show(t["peer"]), t["brain"] / t["peer"]))
    finally:
        server.stop()
        remove_scratch(shm)

    extra: list[str] = []
    if args.write_docs:
        second = Server()
        try:
            extra += ["", "What the chunk size costs (`--chunks`):", ""] + chunk_sizes(second.port)
            if args.client_bin:
                extra += ["", f"redis-rs's clients against redis-py (`--clients {args.client_bin}`):", ""]
                extra += clients(second.port, args.client_bin)
        finally:
            second.stop()
    lines = [
        "| operation | brain | peer | peer's time | brain / peer |",
        "|---|---:|---|---:|---:|",
    ]
    for name, peer_name, brain_t, peer_t, ratio in rows:
        lines.append(f"| {name} | {show(brain_t)} | {peer_name} | {peer_t} | {f'{ratio:.2f}x' if ratio else ''} |")
    table = "\n".join(lines + extra)
    print(table)
    if args.write_docs:
        text = DOC.read_text()
        command = "python brain-bench/redis_bench.py --write-docs" + (" --quick" if args.quick else "")
        if args.client_bin:
            command += f" --client-bin {args.client_bin}"
        block = f"{BEGIN}\n`{command}` (`make bench-redis`), {time.strftime('%Y-%m-%d')}:\n\n{table}\n{END}"
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text += "\n" + block + "\n"
        DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
