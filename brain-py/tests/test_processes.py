"""Several real processes (spawned, not forked) sharing one store."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import _workers
from brain import Brain
from brain.exceptions import BrainCodecError, BrainLockTimeoutError, BrainTimeoutError, BrainUnpicklingError

pytestmark = pytest.mark.shm_only("child processes open the store: a memory store is only this process's")

SPAWN = multiprocessing.get_context("spawn")
TIMEOUT = 120  # seconds for any one child; the suite's own timeout is the backstop


def _wait_for_child(brain: Brain, name: str, results: list) -> None:
    """Waits for a child's signal, raising its error at once if it failed first."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for result in results:
            if result.ready():
                result.get()  # raises the child's exception
        try:
            brain.wait_for(name, timeout=0.5)
            return
        except BrainTimeoutError:
            pass
    raise AssertionError(f"no child set {name!r} within {TIMEOUT} s")


def test_one_process_writes_a_gigabyte_others_read_it(store_path: Path) -> None:
    writer = SPAWN.Process(target=_workers.write_big, args=(str(store_path),))
    writer.start()
    writer.join(TIMEOUT)
    assert writer.exitcode == 0, f"writer exited with {writer.exitcode}"

    brain = Brain(path=store_path)
    assert brain.metadata("big")["size"] >= 2**30
    with SPAWN.Pool(2) as pool:
        results = [pool.apply_async(_workers.read_big, (str(store_path),)) for _ in range(2)]
        reports = [r.get(TIMEOUT) for r in results]
    assert len({r["pid"] for r in reports}) == 2


def test_readers_see_whole_frames_while_it_is_replaced(store_path: Path) -> None:
    rows, versions, workers = 200_000, 8, 4
    brain = Brain(path=store_path)
    brain["frame"] = _workers.constant_frame(0, rows)
    with SPAWN.Pool(workers) as pool:
        results = [
            pool.apply_async(_workers.read_versions, (str(store_path), w, versions, rows)) for w in range(workers)
        ]
        for w in range(workers):
            _wait_for_child(brain, f"ready-{w}", results)
        for version in range(1, versions + 1):
            time.sleep(0.1)
            brain["frame"] = _workers.constant_frame(version, rows)
        seen = [r.get(TIMEOUT) for r in results]
    for versions_seen in seen:
        assert versions_seen[-1] == versions
        assert versions_seen == sorted(versions_seen)
    # The readers ran while the frame was replaced: together they saw several versions.
    assert len({v for s in seen for v in s}) > 2, seen


def test_wait_for_in_a_child_returns_when_the_parent_sets(store_path: Path) -> None:
    brain = Brain(path=store_path)
    with SPAWN.Pool(1) as pool:
        result = pool.apply_async(_workers.wait_for_value, (str(store_path), "answer"))
        _wait_for_child(brain, "child-waiting", [result])
        time.sleep(0.3)
        assert not result.ready()
        brain["answer"] = {"value": np.arange(5), "text": "from the parent"}
        value, waited = result.get(TIMEOUT)
    assert value["text"] == "from the parent"
    np.testing.assert_array_equal(value["value"], np.arange(5))
    assert waited >= 0.25


def test_update_from_four_processes_counts_exactly(store_path: Path) -> None:
    brain = Brain(path=store_path)
    brain["counter"] = 0
    with SPAWN.Pool(4) as pool:
        pids = pool.starmap(_workers.increment, [(str(store_path), "counter", 50)] * 4)
    assert len(pids) == 4
    assert brain["counter"] == 200


def test_a_lock_whose_holder_is_killed_is_free(store_path: Path) -> None:
    brain = Brain(path=store_path)
    holder = SPAWN.Process(target=_workers.hold_lock_forever, args=(str(store_path), "resource"))
    holder.start()
    try:
        assert brain.wait_for("lock-taken", timeout=TIMEOUT) == holder.pid
        with pytest.raises(BrainLockTimeoutError):
            brain.lock("resource", timeout=0.2)
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        holder.join(TIMEOUT)
        assert holder.exitcode == -9
        with brain.lock("resource", timeout=10) as lock:
            assert lock.held
        assert not lock.held
        # update() takes the same lock, and works again too.
        assert brain.update("resource", lambda v: v + 1, default=0) == 1
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


def test_watch_sees_a_childs_sets_and_deletes(brain: Brain) -> None:
    watcher = brain.watch()
    child = SPAWN.Process(target=_workers.set_and_delete, args=(brain,))
    child.start()
    try:

        def next_events(count: int) -> list[tuple[str, str, str]]:
            events = []
            for _ in range(count):
                event = watcher.next_event(timeout=TIMEOUT)
                assert event is not None, f"no more events after {events}"
                events.append(event)
            return events

        assert next_events(2) == [("set", "default", "first"), ("set", "default", "second")]
        Brain(namespace="control", path=brain.path)["go"] = True
        assert next_events(1) == [("deleted", "default", "first")]
        child.join(TIMEOUT)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    # Sets in other namespaces ("control", "elsewhere") are not reported to a watcher of "default".
    assert watcher.next_event(timeout=0.3) is None
    assert brain.names() == ["second"]
    everything = brain.watch(all_namespaces=True)
    brain.set_namespace("elsewhere")
    brain["seen"] = 1
    brain.set_namespace("control")
    del brain["go"]
    assert everything.next_event(timeout=10) == ("set", "elsewhere", "seen")
    assert everything.next_event(timeout=10) == ("deleted", "control", "go")


def test_a_poll_with_a_timeout_of_zero_returns_what_is_queued(brain: Brain) -> None:
    watcher = brain.watch()
    brain["small"] = 1
    brain["large"] = bytes(100_000)
    deadline = time.monotonic() + 10
    seen: list[tuple[str, str, str]] = []
    while len(seen) < 2 and time.monotonic() < deadline:
        event = watcher.next_event(timeout=0)
        if event is not None:
            seen.append(event)
    assert sorted(seen) == [("set", "default", "large"), ("set", "default", "small")]
    assert watcher.next_event(timeout=0) is None


def _take_and_drop(brain: Brain, name: str) -> None:
    brain.lock(name)  # dropped at once, never used as a context manager


def test_a_lock_dropped_by_its_holder_is_released(brain: Brain) -> None:
    _take_and_drop(brain, "job")
    import gc

    gc.collect()
    other = Brain(url=brain.url)
    with other.lock("job", timeout=5):
        pass
    assert brain.update("job", lambda v: v + 1, default=0) == 1


def test_update_and_a_second_lock_inside_a_held_lock(brain: Brain) -> None:
    brain["n"] = 1
    with brain.lock("n"):
        # The lock this thread holds is not taken again: no deadlock.
        assert brain.update("n", lambda v: v + 1) == 2
        # Waiting for it would be waiting forever.
        with pytest.raises(RuntimeError, match="holds the lock on 'n' already"):
            brain.lock("n")
        # With a timeout, it times out as any other wait.
        with pytest.raises(BrainLockTimeoutError):
            brain.lock("n", timeout=0.05)
    with brain.lock("n", timeout=5):
        assert brain["n"] == 2


@pytest.mark.shm_only("a forked child keeps the parent's lock file open")
def test_a_lock_released_is_free_while_a_child_forked_under_it_lives(store_path: Path) -> None:
    import os
    import signal

    brain = Brain(path=store_path)
    with brain.lock("job"):
        pid = os.fork()
        if pid == 0:  # the child: sleeps, holding a copy of the lock's file
            time.sleep(30)
            os._exit(0)
    try:
        with Brain(path=store_path).lock("job", timeout=5):
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.mark.shm_only("a forked child opens the store")
def test_a_child_forked_under_a_lock_waits_for_it_and_loses_no_update(store_path: Path) -> None:
    """A pool forked inside ``with brain.lock(name)``: the parent's lock is
    not the child's, so its ``update`` waits for the parent's write instead
    of overwriting it, and dropping its copy of the lock frees nothing."""
    forked_under_a_lock(lambda: Brain(path=store_path))


def forked_under_a_lock(open_brain: Callable[[], Brain]) -> None:
    """The body of the test above, for any store (test_redis.py runs it on Redis)."""
    import os

    brain = open_brain()
    brain["cnt"] = 0
    ready, released = os.pipe()
    with brain.lock("cnt") as held:
        value = brain["cnt"]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(ready)
                assert not held.held, "a child holds its parent's lock"
                held.release()  # the child's copy: the parent's lock must stay
                os.write(released, b"x")
                brain.update("cnt", lambda v: v + 100)
                code = 0
            finally:
                os._exit(code)
        os.close(released)
        assert os.read(ready, 1) == b"x"
        assert held.held
        with pytest.raises(BrainLockTimeoutError):
            open_brain().lock("cnt", timeout=0)
        time.sleep(0.2)  # the child's update is waiting now, if it waits at all
        brain["cnt"] = value + 1
    os.close(ready)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert brain["cnt"] == 101


@pytest.mark.shm_only("another process deletes what this one maps")
def test_an_idle_process_gives_back_what_another_deleted(store_path: Path) -> None:
    """A process that read an array and a frame, and wrote a frame, then
    makes no call: their memory is given back soon after another process
    deletes them (its cache and its kept mappings let go by themselves)."""
    import json
    import subprocess

    import pandas as pd

    from test_interop import BRAIN

    def held() -> int:
        out = subprocess.run([str(BRAIN), "--store", str(store_path), "stats", "--json"], capture_output=True, check=True)
        return int(json.loads(out.stdout)["held_by_views"])

    brain = Brain(path=store_path)
    brain["array"] = np.arange(2_000_000, dtype=np.float64)
    brain["array"]  # read: cached, mapped
    brain["written"] = pd.DataFrame({"a": np.arange(9_000_000, dtype=np.float64)})  # a frame in parts
    subprocess.run([str(BRAIN), "--store", str(store_path), "rm", "array", "written"], check=True)
    deadline = time.monotonic() + 10
    while held() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held() == 0


def test_children_forked_while_a_thread_writes_can_write(store_path: Path) -> None:
    """A notebook thread refreshing a value while a fork-started pool starts:
    no child may inherit a lock the writing thread held (they used to hang)."""
    import os
    import signal
    import threading

    brain = Brain(path=store_path)
    stop = threading.Event()

    def refresh() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            brain["status"] = i
            brain["frame"] = np.full(200_000, i)

    writer = threading.Thread(target=refresh)
    writer.start()
    hung = []
    try:
        for k in range(30):
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a hung child ends, and says so by its status
                brain[f"child {k}"] = k
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                hung.append(k)
    finally:
        stop.set()
        writer.join()
    assert hung == [], f"children {hung} could not write"
    assert sorted(brain.names()) == sorted(["status", "frame", *(f"child {k}" for k in range(30))])


@pytest.mark.shm_only("a forked child uses the parent's watcher")
def test_a_watcher_used_in_a_forked_child_is_a_clear_error(store_path: Path) -> None:
    import os
    import threading

    brain = Brain(path=store_path)
    watcher = brain.watch()
    # A thread of the parent waits in the watcher while the fork happens.
    waiting = threading.Thread(target=watcher.next_event, kwargs={"timeout": 2})
    waiting.start()
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:
        try:
            watcher.next_event(timeout=1)
            os._exit(1)
        except RuntimeError as err:
            if "make a new one here" not in str(err):
                os._exit(2)
            # Closing the child's copy (or leaving a with block) leaves the
            # parent's watcher registered.
            watcher.close()
            with watcher:
                pass
            os._exit(0 if watcher.closed else 4)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    waiting.join()
    assert os.waitstatus_to_exitcode(status) == 0
    brain["after"] = 1
    assert watcher.next_event(timeout=10) == ("set", "default", "after")


_WRITES_A_MAIN_CLASS = """
import sys
from brain import Brain


class Point:
    def __init__(self, x):
        self.x = x


Brain(path=sys.argv[1])["point"] = Point(3)
"""


def test_a_pickle_of_a_class_this_process_lacks_is_a_clear_error(store_path: Path, tmp_path: Path) -> None:
    """Another program's ``__main__`` class cannot be found here: the read says
    so, names the object and what to do, and keeps pickle's error as the cause."""
    import subprocess
    import sys

    script = tmp_path / "writer.py"
    script.write_text(_WRITES_A_MAIN_CLASS)
    subprocess.run([sys.executable, str(script), str(store_path)], check=True, timeout=TIMEOUT)
    brain = Brain(path=store_path)
    with pytest.raises(BrainUnpicklingError, match=r"'point' .*__main__") as raised:
        brain["point"]
    assert isinstance(raised.value, BrainCodecError)
    assert isinstance(raised.value.__cause__, AttributeError)
    assert brain.metadata("point") is not None, "the object is still there"
