"""Functions run in child processes (spawned) by test_processes.py and test_memory.py.

They live at module level in an importable module so the spawn start
method can find them. Each opens the store by path or URL; a failed check raises,
and the exception (with its traceback) reaches the parent through the pool.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from brain import Brain

# ---------------------------------------------------------------- big objects

BIG_LEN = 2**27  # float64: exactly 1 GiB
BIG_STRIDE = 4096  # one nonzero value every 32 KiB (8 pages): cheap to create, found by a full scan
ROWS = 10_000_000
DISTINCT = 100_000


def big_array_expected() -> tuple[float, int]:
    """The sum and count of nonzeros of the array written by write_big."""
    k = np.arange(0, BIG_LEN, BIG_STRIDE, dtype=np.float64)
    values = k / BIG_STRIDE + 1.0
    return float(values.sum()) + 0.5, len(k) + 1


def distinct_string(k: int) -> str:
    return f"v{k:011d}"  # 12 characters


def write_big(path: str) -> None:
    import pandas as pd
    import pyarrow as pa

    brain = Brain(path=path)
    # np.zeros maps untouched zero pages, so only the pages written here are
    # ever faulted in by this process; the store still gets the full 1 GiB.
    arr = np.zeros(BIG_LEN, dtype=np.float64)
    arr[::BIG_STRIDE] = np.arange(BIG_LEN // BIG_STRIDE, dtype=np.float64) + 1.0
    arr[-1] = 0.5
    brain["big"] = arr
    del arr

    base = np.arange(ROWS, dtype=np.float64)
    columns: dict[str, Any] = {f"f{j}": base * (j + 1) for j in range(5)}
    columns["i0"] = np.arange(ROWS, dtype=np.int64)
    columns["i1"] = np.arange(ROWS, dtype=np.int64) * -3
    strings = pa.array([distinct_string(k) for k in range(DISTINCT)])
    # Built on Arrow (row i holds distinct_string(i % DISTINCT)): fast, and
    # a pandas string column all the same.
    codes = pa.array(np.arange(ROWS, dtype=np.int64) % DISTINCT)
    columns["s"] = pd.Series(pd.arrays.ArrowStringArray(strings.take(codes)))
    frame = pd.DataFrame(columns)
    brain["frame"] = frame


def read_big(path: str) -> dict[str, Any]:
    brain = Brain(path=path)
    started = time.perf_counter()
    arr = brain["big"]
    assert arr.shape == (BIG_LEN,) and arr.dtype == np.float64
    assert arr.nbytes == 2**30
    assert not arr.flags.writeable
    view = brain.view("big")
    assert view.address <= arr.__array_interface__["data"][0] < view.address + len(view), "1 GiB was copied"
    expected_sum, expected_nonzero = big_array_expected()
    assert float(arr.sum()) == expected_sum
    assert int(np.count_nonzero(arr)) == expected_nonzero
    assert arr[0] == 1.0 and arr[BIG_STRIDE * 1000] == 1001.0 and arr[1] == 0.0 and arr[-1] == 0.5

    frame = brain["frame"]
    assert frame.shape == (ROWS, 8)
    assert list(frame.columns) == ["f0", "f1", "f2", "f3", "f4", "i0", "i1", "s"]
    total = ROWS * (ROWS - 1) // 2
    for j in range(5):
        assert frame[f"f{j}"].dtype == np.float64
        assert float(frame[f"f{j}"].sum()) == float(total * (j + 1))
    assert frame["i0"].dtype == np.int64 and int(frame["i0"].sum()) == total
    assert int(frame["i1"].sum()) == -3 * total
    for row in (0, 1, DISTINCT - 1, DISTINCT, 4_567_891, ROWS - 1):
        assert frame["s"].iloc[row] == distinct_string(row % DISTINCT)
        assert frame["f3"].iloc[row] == row * 4.0
        assert frame["i1"].iloc[row] == -3 * row
    strings = brain.get("frame", as_arrow=True).column("s")
    assert strings.null_count == 0
    return {"pid": os.getpid(), "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- torn reads


def constant_frame(version: int, rows: int) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "a": np.full(rows, version, dtype=np.int64),
            "b": np.full(rows, float(version)),
            "c": pd.array([str(version)] * rows, dtype="string"),
        }
    )


def read_versions(path: str, worker: int, last_version: int, rows: int) -> list[int]:
    """Reads the frame until it shows last_version; every frame must be one whole version."""
    brain = Brain(path=path)
    brain["frame"]  # the first read imports pandas: done before saying ready
    brain[f"ready-{worker}"] = os.getpid()
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        frame = brain["frame"]
        assert len(frame) == rows, f"frame of {len(frame)} rows"
        version = int(frame["a"].iloc[0])
        assert (frame["a"].to_numpy() == version).all(), "column a mixes versions"
        assert (frame["b"].to_numpy() == float(version)).all(), f"column b is not all {version}"
        assert (frame["c"] == str(version)).all(), f"column c is not all {version}"
        assert not seen or version >= seen[-1], f"version {version} after {seen[-1]}"
        if not seen or seen[-1] != version:
            seen.append(version)
        if version == last_version:
            return seen
    raise AssertionError(f"worker {worker} never saw version {last_version}; saw {seen}")


# ---------------------------------------------------------------- wait_for, update, lock, watch


def wait_for_value(path: str, name: str) -> Any:
    brain = Brain(path=path)
    brain["child-waiting"] = os.getpid()
    started = time.monotonic()
    value = brain.wait_for(name, timeout=60)
    return value, time.monotonic() - started


def increment(path: str, name: str, times: int) -> int:
    brain = Brain(path=path)
    for _ in range(times):
        brain.update(name, lambda n: n + 1)
    return os.getpid()


def hold_lock_forever(path: str, name: str) -> None:
    brain = Brain(path=path)
    lock = brain.lock(name)
    assert lock.held
    brain["lock-taken"] = os.getpid()
    time.sleep(600)


def set_and_delete(brain: Brain) -> None:
    """Takes the parent's Brain itself: it pickles into a Brain on the same store.

    The delete waits for the parent's go-ahead: a watcher learns an object's
    name from its file, so a name set and deleted before the watcher reads
    its events leaves nothing to report.
    """
    brain["first"] = 1
    brain["second"] = np.arange(3)
    Brain(namespace="control", path=brain.path).wait_for("go", timeout=60)
    del brain["first"]
    brain.set_namespace("elsewhere")
    brain["unwatched"] = 1


# ---------------------------------------------------------------- memory stores


def names_in(url: str) -> list[str]:
    """Every name this process finds in the store at ``url``."""
    return Brain(url=url).names(namespace="all")
