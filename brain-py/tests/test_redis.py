"""Brain on Redis: a real redis-server (the session's ``redis_server`` fixture),
each test under a key prefix of its own, each simulated host with a cache
directory of its own."""

from __future__ import annotations

import os
import signal
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from brain import Brain
from brain.exceptions import (
    BrainIOError,
    BrainNameNotExistError,
    BrainPermissionError,
    BrainStorePathError,
    BrainStoreUrlError,
)


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "region": pd.Categorical(rng.choice(["north", "south", "east"], rows)),
            "revenue": rng.random(rows),
            "units": rng.integers(0, 1000, rows),
        }
    )


def run_host(code: str, *args: str) -> str:
    """Runs ``code`` in a fresh Python process (another "host" when given another cache)."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_values_of_every_kind_round_trip(redis_url: str, redis_cache: Callable[[], str]) -> None:
    brain = Brain(url=redis_url, cache=redis_cache())
    values = {
        "text": "héllo",
        "bytes": b"\x00\x01" * 1000,
        "array": np.arange(300_000, dtype=np.float64).reshape(1000, 300),
        "frame": frame(200_000, 1),
        "table": pa.table({"x": list(range(1000)), "y": ["a"] * 1000}),
        "polars": pl.DataFrame({"x": list(range(1000))}),
        "dict": {"a": [1, 2, 3], "b": np.ones(10)},
    }
    for name, value in values.items():
        brain[name] = value
    assert brain.names() == sorted(values)
    assert brain["text"] == "héllo"
    assert brain["bytes"] == values["bytes"]
    np.testing.assert_array_equal(brain["array"], values["array"])
    assert brain["array"].flags.writeable is False
    pd.testing.assert_frame_equal(brain["frame"], values["frame"])
    assert brain["table"].equals(values["table"])
    assert brain["polars"].equals(values["polars"])
    assert brain["dict"]["a"] == [1, 2, 3]
    brain.learn("text", "new", description="described")
    assert brain.metadata("text")["description"] == "described"
    del brain["text"]
    with pytest.raises(BrainNameNotExistError):
        brain["text"]
    brain.close()


def test_a_write_without_a_description_keeps_the_old_one(redis_url: str, redis_cache: Callable[[], str]) -> None:
    # Small values keep it inside the one publish script; large ones read it first.
    brain = Brain(url=redis_url, cache=redis_cache())
    values = {"text": ("a", "b"), "small": (1, 2), "large": (np.zeros(100_000), np.ones(100_000))}
    for name, (first, second) in values.items():
        brain.learn(name, first, description=f"about {name}")
        brain[name] = second
        assert brain.metadata(name)["description"] == f"about {name}"
        got = brain[name]
        assert np.array_equal(got, second) if name == "large" else got == second
        brain.learn(name, first, description="changed")
        assert brain.metadata(name)["description"] == "changed"
    brain["fresh"] = 3
    assert brain.metadata("fresh")["description"] == ""
    brain.close()


def test_a_frame_set_on_one_host_is_read_and_replaced_on_another(
    redis_url: str, redis_cache: Callable[[], str]
) -> None:
    here, there = redis_cache(), redis_cache()
    brain = Brain(url=redis_url, cache=here)
    brain["sales"] = frame(500_000, 1)
    reader = """
        import sys
        from brain import Brain
        brain = Brain(url=sys.argv[1], cache=sys.argv[2])
        print(round(float(brain["sales"]["revenue"].sum()), 6))
    """
    assert run_host(reader, redis_url, there) == str(round(float(frame(500_000, 1)["revenue"].sum()), 6))
    # The other host keeps its copy in its own shared memory.
    assert any(p.name.startswith("redis-cache-") or p.is_dir() for p in Path(there).iterdir())
    brain["sales"] = frame(400_000, 2)
    assert run_host(reader, redis_url, there) == str(round(float(frame(400_000, 2)["revenue"].sum()), 6))
    brain.close()


def test_a_frame_changed_on_two_hosts_in_turn_loses_no_change(
    redis_url: str, redis_cache: Callable[[], str]
) -> None:
    """Each host's tracked binding learns of the other's change a moment
    late; changes read the manifest from the server, so none is lost."""
    here, there = redis_cache(), redis_cache()
    brain = Brain(url=redis_url, cache=here)
    brain["f"] = pd.DataFrame({"v": np.arange(4)})
    brain.assign("f", a=np.zeros(4))
    worker = """
        import sys
        import numpy as np, pandas as pd
        from brain import Brain
        brain = Brain(url=sys.argv[1], cache=sys.argv[2])
        brain.append("f", pd.DataFrame({"v": [9], "a": [1.0]}))
        brain.assign("f", b=np.ones(5))
        print(len(brain["f"]))
    """
    assert run_host(worker, redis_url, there) == "5"
    brain.append("f", pd.DataFrame({"v": [10], "a": [2.0], "b": [3.0]}))
    got = brain["f"]
    assert list(got.columns) == ["v", "a", "b"] and list(got["v"]) == [0, 1, 2, 3, 9, 10]
    assert list(got["b"]) == [1.0] * 5 + [3.0]
    brain.compact("f")
    assert brain["f"].equals(got)
    brain.close()


def test_without_a_cache_and_strict(redis_url: str, redis_cache: Callable[[], str]) -> None:
    writer = Brain(url=redis_url, cache=False)
    strict = Brain(url=redis_url, cache=redis_cache(), consistency="strict")
    writer["x"] = np.arange(1_000_000)
    np.testing.assert_array_equal(strict["x"], np.arange(1_000_000))
    writer["x"] = np.arange(10)
    # Strict reads ask the server every time: the replace is seen at once.
    np.testing.assert_array_equal(strict["x"], np.arange(10))
    with pytest.raises(ValueError, match="tracked"):
        Brain(url=redis_url, consistency="eventually")
    with pytest.raises(TypeError, match="a cache is a store directory"):
        Brain(url=redis_url, cache=3)  # type: ignore[arg-type]
    # "off", as the command line says it, is no cache, not a directory "off".
    before = set(os.listdir("."))
    assert "host_cache_used" not in Brain(url=redis_url, cache="off").store.usage()
    assert "host_cache_used" in strict.store.usage()
    assert set(os.listdir(".")) == before


def test_update_is_safe_across_processes(redis_url: str, redis_cache: Callable[[], str]) -> None:
    brain = Brain(url=redis_url, cache=redis_cache())
    brain["n"] = 0
    worker = """
        import sys
        from brain import Brain
        brain = Brain(url=sys.argv[1], cache=False)
        for _ in range(15):
            brain.update("n", lambda n: n + 1)
    """
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(worker), redis_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert brain["n"] == 45


def test_handles_of_one_process_see_each_others_writes_at_once(
    redis_url: str, redis_cache: Callable[[], str]
) -> None:
    """A process sees its own writes: a handle's tracked copy must not
    outlive a write or delete made by another handle of the process while
    the server's notice of it is on the way."""
    reader = Brain(url=redis_url, cache=redis_cache())
    other = Brain(url=redis_url, cache=redis_cache())
    writer = Brain(url=redis_url, cache=False)
    for i in range(200):
        writer["x"] = i
        assert reader["x"] == i and other["x"] == i
        other["x"] = -i
        assert reader["x"] == -i
    del writer["x"]
    assert "x" not in reader and reader.get("x") is None and other.get("x") is None
    for handle in (reader, other, writer):
        handle.close()


def test_updates_under_the_lock_lose_nothing_with_host_caches(
    redis_url: str, redis_cache: Callable[[], str]
) -> None:
    """update() reads under the name's lock: the value the last holder wrote,
    not a tracked copy whose change notice has not arrived yet."""
    first = Brain(url=redis_url, cache=redis_cache())
    second = Brain(url=redis_url, cache=redis_cache())
    first["n"] = 0
    for _ in range(150):
        first.update("n", lambda n: n + 1)
        second.update("n", lambda n: n + 1)
    assert first["n"] == second["n"] == 300
    worker = """
        import sys
        from brain import Brain
        brain = Brain(url=sys.argv[1], cache=sys.argv[2])
        for _ in range(100):
            brain.update("n", lambda n: n + 1)
            with brain.lock("m"):
                brain["m"] = brain.get("m", 0) + 1
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(worker), redis_url, redis_cache()], stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert first["n"] == 600 and first["m"] == 300
    first.close()
    second.close()


def test_watch_and_wait_for_see_other_processes(redis_url: str, redis_cache: Callable[[], str]) -> None:
    brain = Brain(url=redis_url, cache=redis_cache())
    events = brain.watch()
    run_host(
        """
        import sys
        from brain import Brain
        Brain(url=sys.argv[1], cache=False)["ready"] = True
        """,
        redis_url,
    )
    assert brain.wait_for("ready", timeout=10) is True
    assert events.next_event(timeout=10) == ("set", "default", "ready")
    del brain["ready"]
    assert events.next_event(timeout=10) == ("deleted", "default", "ready")


def test_a_wait_and_a_watch_ride_out_a_server_restart(redis_cache: Callable[[], str]) -> None:
    import threading

    from conftest import RedisServer

    server = RedisServer()
    try:
        url = server.url("pytest-restart")
        brain = Brain(url=url, cache=redis_cache())
        watcher = brain.watch()
        got: list[object] = []
        seen: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(brain.wait_for("late", timeout=None)))
        watching = threading.Thread(target=lambda: seen.append(next(iter(watcher))))
        waiter.start()
        watching.start()
        time.sleep(0.3)
        server.kill()
        time.sleep(0.8)  # longer than a slice of the wait
        assert waiter.is_alive(), "the wait ended when the server went away"
        assert watching.is_alive(), "the watch ended when the server went away"
        server.restart()
        Brain(url=url, cache=False)["late"] = "after the restart"
        waiter.join(timeout=30)
        watching.join(timeout=30)
        assert got == ["after the restart"]
        assert seen == [("set", "default", "late")]
        server.kill()
        with pytest.raises(BrainIOError, match="is the server running"):
            brain.wait_for("never", timeout=0.6)
    finally:
        server.stop()


def test_a_pickled_brain_reopens_the_same_store(redis_url: str, redis_cache: Callable[[], str]) -> None:
    cache = redis_cache()
    brain = Brain("ns", url=redis_url, cache=cache)
    brain["x"] = "shared"
    again = pickle.loads(pickle.dumps(brain))
    assert again["x"] == "shared" and again.namespace == "ns"
    brain.sleep()
    brain.wake_up()
    assert brain["x"] == "shared"


def test_dump_and_restore(redis_url: str, redis_cache: Callable[[], str], tmp_path: Path) -> None:
    brain = Brain(url=redis_url, cache=redis_cache())
    brain["sales"] = frame(10_000, 3)
    brain["note"] = "kept"
    report = brain.dump(tmp_path / "dump")
    assert report["objects"] == 2
    brain.forget("sales")
    brain.forget("note")
    brain.restore(tmp_path / "dump")
    pd.testing.assert_frame_equal(brain["sales"], frame(10_000, 3))
    assert brain["note"] == "kept"


def test_a_password_is_never_shown(redis_server: object) -> None:
    url = "redis://alice:s3cret-pw@127.0.0.1:1/?prefix=x"
    with pytest.raises(Exception) as caught:
        Brain(url=url, cache=False)
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)
    with pytest.raises(Exception) as caught:
        Brain(url="redis://alice:s3cret-pw@127.0.0.1:1,127.0.0.1:2")
    assert "s3cret-pw" not in str(caught.value) and "redis+cluster://" in str(caught.value)


def test_a_child_forked_under_a_lock_waits_for_it_and_loses_no_update(redis_url: str, redis_cache: Callable[[], str]) -> None:
    from test_processes import forked_under_a_lock

    cache = redis_cache()
    forked_under_a_lock(lambda: Brain(url=redis_url, cache=cache))


BURST_READER = """
import sys, time
from brain import Brain
b = Brain(url=sys.argv[1], cache=sys.argv[2])
# Read until tracking is up: then the binding is trusted, and reads make no round trip.
deadline = time.monotonic() + 1
while time.monotonic() < deadline:
    assert b["b"] == "old"
    time.sleep(0.01)
print("ready", flush=True)
sys.stdin.readline()  # the burst and the write of b are done
started = time.monotonic()
while b["b"] != "new":
    if time.monotonic() - started > 10:
        break
print(time.monotonic() - started, flush=True)
"""


def test_a_write_after_a_burst_reaches_another_process_at_once(redis_url: str, redis_cache: Callable[[], str]) -> None:
    """A burst of writes to one name, then one write to another: a process
    that read the other sees it within a fraction of a second, not behind
    the burst's invalidations."""
    writer = Brain(url=redis_url, cache=redis_cache())
    writer["b"] = "old"
    with subprocess.Popen(
        [sys.executable, "-c", BURST_READER, redis_url, redis_cache()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as reader:
        try:
            assert reader.stdout is not None and reader.stdin is not None
            assert reader.stdout.readline().strip() == "ready"
            for i in range(3000):
                writer["a"] = i
            writer["b"] = "new"
            reader.stdin.write("done\n")
            reader.stdin.flush()
            waited = float(reader.stdout.readline())
        finally:
            reader.kill()
    assert waited < 0.5, f"the other process saw the write {waited:.2f} s late"


def test_listing_a_redis_store_from_the_command_line_makes_no_cache(redis_url: str, tmp_path: Path) -> None:
    from test_interop import BRAIN

    Brain(url=redis_url, cache=False)["x"] = b"payload"
    default_cache = tmp_path / "default-store"
    env = {**os.environ, "BRAIN_PATH": str(default_cache)}
    env.pop("BRAIN_URL", None)
    for command in (["ls"], ["ns", "ls"]):
        done = subprocess.run([str(BRAIN), "--store", redis_url, *command], capture_output=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
    assert not default_cache.exists()
    # A read does use the host's default store as its cache.
    done = subprocess.run([str(BRAIN), "--store", redis_url, "cat", "x"], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stdout == b"payload", done.stderr
    assert default_cache.exists()


def test_a_cache_directory_refused_names_the_cache_option(redis_url: str, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    with pytest.raises(BrainStorePathError) as caught:
        Brain(url=redis_url, cache=str(not_a_directory))
    message = str(caught.value)
    assert "as this host's cache of a Redis store" in message and "Brain(url=..., cache=PATH)" in message, message
    assert "BRAIN_PATH" not in message
    assert caught.value.path == not_a_directory  # type: ignore[attr-defined]
    # One this user may not write in (sysfs refuses even root) likewise.
    with pytest.raises(BrainStorePathError) as caught:
        Brain(url=redis_url, cache="/sys/brain-cache")
    message = str(caught.value)
    assert "may not create the store's files in it" in message and "cache=PATH" in message, message
    assert "BRAIN_PATH" not in message


def test_a_database_number_past_the_servers_says_so(redis_server: Any) -> None:
    with pytest.raises(BrainStoreUrlError, match=r"database number \(redis://HOST:PORT/N\) is past the server's `databases`"):
        Brain(url=f"redis://127.0.0.1:{redis_server.port}/99", cache=False)


def test_a_write_under_a_lock_that_expired_is_a_lock_lost_error(redis_url: str) -> None:
    url = f"{redis_url}&lock_ttl=1"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, brain\n"
            "b = brain.Brain(url=sys.argv[1], cache=False)\n"
            "with b.lock('n'):\n"
            "    print('locked', flush=True); sys.stdin.readline()\n"
            "    try:\n"
            "        b['n'] = 'late'\n"
            "    except brain.exceptions.BrainLockLostError as err:\n"
            "        print(type(err).__name__, err.namespace, err.name, err.ttl, flush=True)\n",
            url,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGSTOP)
        other = Brain(url=url, cache=False)
        with other.lock("n", timeout=10):
            other["n"] = "next holder"
        os.kill(holder.pid, signal.SIGCONT)
        holder.stdin.write("write\n")
        holder.stdin.flush()
        out, _ = holder.communicate(timeout=30)
        assert out.split() == ["BrainLockLostError", "default", "n", "1.0"], out
        assert other["n"] == "next holder"
    finally:
        holder.kill()
        holder.wait()


def test_optimistic_update_retries_and_loses_nothing(redis_url: str, redis_cache: Callable[[], str]) -> None:
    brain = Brain(url=redis_url, cache=redis_cache())
    brain["n"] = 0
    worker = """
        import sys
        from brain import Brain
        brain = Brain(url=sys.argv[1], cache=sys.argv[2])
        for _ in range(20):
            brain.update("n", lambda n: n + 1, optimistic=True)
    """
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(worker), redis_url, redis_cache()], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert brain["n"] == 60
    # A conflict is retried on the newer value; fn may run more than once.
    calls: list[int] = []

    def bump(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            Brain(url=redis_url, cache=False)["n"] = 100  # another writer gets there first
        return n + 1

    assert brain.update("n", bump, optimistic=True) == 101
    assert calls == [60, 100] and brain["n"] == 101
    assert brain.update("fresh", lambda n: n + 1, default=0, optimistic=True) == 1
    with pytest.raises(BrainNameNotExistError):
        brain.update("missing", lambda n: n, optimistic=True)


def test_versions_are_a_redis_stores_own(redis_url: str) -> None:
    from brain import _brain
    from brain.exceptions import BrainUnsupportedOperationError

    store = _brain.Store(redis_url, cache=False)
    assert store.version("default", "x") is None
    store.put_text("default", "x", "1")
    version = store.version("default", "x")
    assert version is not None and len(version) == 32
    found = store.get_versioned("default", "x")
    assert found is not None and found[1] == version and bytes(found[0]) == b"1"
    with store.expect_version("default", "x", "0" * 32) as guard:
        with pytest.raises(Exception, match="another writer"):
            store.put_text("default", "x", "2")
        assert guard.conflicted
    store.put_text("default", "x", "3")  # the guard ended
    with pytest.raises(BrainUnsupportedOperationError):
        _brain.Store("memory://versions").version("default", "x")


def test_a_forked_worker_opens_its_own_connections(redis_url: str, redis_cache: Callable[[], str]) -> None:
    # gunicorn --preload: the app opens its Brain, then forks the workers.
    brain = Brain(url=redis_url, cache=redis_cache())
    brain["x"] = np.arange(500_000)
    assert int(brain["x"].sum()) == 124999750000  # connections, a tracking thread, a warm binding
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child's outcome is its exit code)
        code = 1
        try:
            total = int(brain["x"].sum())
            brain["from child"] = "hello"
            brain.update("n", lambda n: n + 1, default=0)
            code = 0 if total == 124999750000 and brain["n"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    strict = Brain(url=redis_url, cache=False)
    assert strict["from child"] == "hello" and strict["n"] == 1
    brain["x"] = np.arange(10)  # the parent's connections still work
    assert int(brain["x"].sum()) == 45


def test_a_read_waiting_on_the_server_lets_other_threads_run(redis_server: Any, redis_cache: Callable[[], str]) -> None:
    # A web app's other threads (a Dash worker's, a heartbeat) run while a
    # read waits for Redis: here for a server paused for 0.8 s.
    import threading
    import time

    brain = Brain(url=redis_server.url(f"pytest-{os.getpid()}-gil"), cache=False)
    brain["s"] = "x"
    gaps: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    # Resumed by another process: a thread of this one may be what is stopped.
    resume = subprocess.Popen(["sh", "-c", f"sleep 0.8; kill -CONT {pid}"])
    try:
        started = time.perf_counter()
        for read in (lambda: brain["s"], lambda: "s" in brain, brain.namespaces):
            read()
        waited = time.perf_counter() - started
    finally:
        resume.wait()
        os.kill(pid, signal.SIGCONT)
        done.set()
        ticker.join()
    assert waited > 0.5, "the server was not paused"
    assert max(gaps) < 0.4, f"another thread stopped for {max(gaps):.2f} s"


def test_a_user_without_the_rights_gets_a_permission_error(redis_server: Any, redis_url: str) -> None:
    # ACL users: one that may not run scripts (every write publishes with
    # one), one that may only read. Each refusal is a BrainPermissionError;
    # the reader opens the store and reads it, chunked objects too (whose
    # fetch's mark on the version, a write, the server refuses it).
    port = str(redis_server.port)
    users = {"noscripts": ["+@all", "-evalsha", "-eval"], "reader": ["+@read", "+@connection"]}
    for user, rights in users.items():
        subprocess.run(["redis-cli", "-p", port, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", *rights], check=True)
    try:
        Brain(url=redis_url, cache=False)["x"] = np.ones(10)
        Brain(url=redis_url, cache=False)["big"] = np.arange(1 << 17, dtype=np.float64)
        as_user = lambda user: Brain(url=redis_url.replace("redis://", f"redis://{user}:pw@"), cache=False)  # noqa: E731
        no_scripts = as_user("noscripts")
        assert no_scripts["x"][0] == 1.0
        with pytest.raises(BrainPermissionError, match="rights on the server"):
            no_scripts["y"] = np.ones(3 << 20)
        reader = as_user("reader")
        assert sorted(reader.names()) == ["big", "x"] and reader["x"][0] == 1.0
        for _ in range(2):
            assert np.array_equal(reader["big"], np.arange(1 << 17, dtype=np.float64))
        with pytest.raises(BrainPermissionError, match="cannot publish"):
            reader["y"] = 1
        with pytest.raises(BrainPermissionError, match="cannot create a namespace"):
            reader.set_namespace("new")
    finally:
        subprocess.run(["redis-cli", "-p", port, "ACL", "DELUSER", *users], check=True, capture_output=True)
