"""Dump, restore, auto-restore and the `brain sync` mirror, from Python, on a real sled dump.

A reboot (or a wiped /dev/shm) is played by removing the store: its
directory, or every namespace of a memory store.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _helpers import remove_store
from brain import Brain
from brain.exceptions import (
    BrainCorruptDumpError,
    BrainDumpConflictError,
    BrainDumpError,
    BrainDumpIOError,
    BrainDumpNotFoundError,
    BrainStoreFullError,
)

BRAIN_BIN = Path(__file__).resolve().parents[2] / "target" / "debug" / "brain"


def fill(brain: Brain) -> dict[str, object]:
    values: dict[str, object] = {
        "text": "a text object",
        "raw": b"\x00\x01raw bytes",
        "array": np.arange(200_000, dtype=np.float64).reshape(400, 500),
        "frame": pd.DataFrame(
            {"price": np.linspace(0, 1, 1000), "sku": pd.array([f"s{i % 37}" for i in range(1000)], dtype="str")},
            index=pd.RangeIndex(1000, name="row"),
        ),
        "nested": {"weights": np.ones(10), "tags": ["a", "b"]},
    }
    for name, value in values.items():
        brain.learn(name, value, description=f"the {name}")
    brain.set_namespace("other space")
    brain["second"] = 42
    brain.set_namespace("default")
    return values


def assert_same(brain: Brain, values: dict[str, object]) -> None:
    assert brain.names() == sorted(values)
    for name, value in values.items():
        got = brain[name]
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got, value)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value)
        elif isinstance(value, dict):
            np.testing.assert_array_equal(got["weights"], value["weights"])
            assert got["tags"] == value["tags"]
        else:
            assert got == value
        assert brain.metadata(name)["description"] == f"the {name}"
    assert brain.names(namespace="other space") == ["second"]


def test_dump_and_restore_round_trip_every_codec(brain: Brain, tmp_path: Path, new_store) -> None:
    values = fill(brain)
    report = brain.dump(tmp_path / "dump", level=1)
    assert report["objects"] == len(values) + 1
    listing = Brain.list_dump(tmp_path / "dump")
    assert {(o["namespace"], o["name"]) for o in listing["objects"]} >= {("default", "frame"), ("other space", "second")}

    fresh = Brain(url=new_store())
    restored = fresh.restore(tmp_path / "dump")
    assert restored["restored"] == len(values) + 1
    assert_same(fresh, values)


def test_a_conflict_names_a_changed_frame_as_one_name(brain: Brain, tmp_path: Path) -> None:
    brain["f"] = pd.DataFrame({"x": [1.0, 2.0]})
    brain.append("f", pd.DataFrame({"x": [3.0]}))  # a manifest and its parts
    brain.dump(tmp_path / "dump")
    with pytest.raises(BrainDumpConflictError) as info:
        brain.restore(tmp_path / "dump")
    message = str(info.value)
    assert "1 object(s)" in message and '"default"/"f"' in message, message
    assert "brain-part" not in message


def test_persist_naming_a_file_says_to_give_a_directory(tmp_path: Path, store_url: str) -> None:
    (tmp_path / "a-file").write_text("not a dump")
    with pytest.raises(BrainDumpError, match="give the directory of a dump"):
        Brain(url=store_url, persist=tmp_path / "a-file")


def test_a_dump_leaves_a_hosts_redis_cache_out(brain: Brain, tmp_path: Path) -> None:
    brain["mine"] = "a user's value"
    cache = Brain(url=brain.url, namespace="redis-cache-" + "ab" * 16)
    cache["copy"] = b"a copy of what a Redis server holds"
    report = brain.dump(tmp_path / "dump")
    assert report["objects"] == 1
    assert report["cache_namespaces_left_out"] == [cache.namespace]
    report = cache.dump(tmp_path / "cache", namespace=cache.namespace)
    assert report["objects"] == 1 and report["cache_namespaces_left_out"] == []


def test_a_dump_the_filesystem_refuses_is_an_os_error(brain: Brain, tmp_path: Path) -> None:
    import errno

    brain["x"] = 1
    (tmp_path / "a file").write_text("not a directory")
    with pytest.raises(BrainDumpIOError) as info:
        brain.dump(tmp_path / "a file" / "dump")
    assert isinstance(info.value, OSError) and isinstance(info.value, BrainDumpError)
    assert info.value.errno == errno.ENOTDIR
    assert info.value.filename == str(tmp_path / "a file" / "dump")


def test_restore_refuses_conflicts_corruption_and_missing_dumps(brain: Brain, tmp_path: Path, new_store) -> None:
    fill(brain)
    brain.dump(tmp_path / "dump")
    with pytest.raises(BrainDumpConflictError, match=r"on_conflict=\"skip\""):
        brain.restore(tmp_path / "dump")
    assert brain.restore(tmp_path / "dump", on_conflict="skip")["skipped"] == 6

    with pytest.raises(BrainDumpNotFoundError):
        brain.restore(tmp_path / "nowhere")
    payload = max((tmp_path / "dump" / "data").iterdir(), key=lambda p: p.stat().st_size)
    damaged = bytearray(payload.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    payload.write_bytes(bytes(damaged))
    empty = Brain(url=new_store())
    with pytest.raises(BrainCorruptDumpError):
        empty.restore(tmp_path / "dump")
    assert empty.names(namespace="all") == [], "a refused restore wrote something"


def test_restore_into_a_store_without_room_fails_before_writing(brain: Brain, tmp_path: Path, new_store) -> None:
    brain["big"] = np.random.default_rng(0).random(500_000)
    brain.dump(tmp_path / "dump", level=1)
    small = Brain(url=new_store(), capacity=1_000_000)
    with pytest.raises(BrainStoreFullError) as raised:
        small.restore(tmp_path / "dump")
    assert small.names() == []
    full = raised.value
    assert full.needed > full.free and full.needed >= 4_000_000
    assert (full.used, full.capacity, full.objects) == (0, 1_000_000, 1)
    assert small.url.endswith(full.location) and full.namespace is None and full.name is None
    assert (full.filesystem_full, full.replacing, full.held, full.holders) == (False, 0, 0, [])


def test_a_store_opened_with_a_persistence_directory_restores_itself(brain: Brain, tmp_path: Path) -> None:
    values = fill(brain)
    brain.dump(tmp_path / "dump")
    store = brain.url
    brain.close()
    remove_store(store)  # the reboot: /dev/shm is empty
    reopened = Brain(url=store, persist=tmp_path / "dump")
    assert reopened.restored is not None and reopened.restored["restored"] == len(values) + 1
    assert_same(reopened, values)
    again = Brain(url=store, persist=tmp_path / "dump")
    assert again.restored is None, "a store with objects must not be restored over"


@pytest.mark.shm_only("`brain sync` is another process, mirroring the store it opens by path")
def test_the_service_survives_a_restart_through_brain_sync(brain: Brain, tmp_path: Path) -> None:
    assert BRAIN_BIN.exists(), f"{BRAIN_BIN} is missing: build it with `cargo build --bins` (make test does)"
    mirror = tmp_path / "mirror"
    log = (tmp_path / "sync.log").open("wb")
    sync = subprocess.Popen(
        [str(BRAIN_BIN), "--store", brain.path, "sync", "--to", str(mirror)], stdout=log, stderr=log
    )
    try:
        values = fill(brain)
        brain.forget("raw")
        del values["raw"]
        deadline = time.monotonic() + 30
        expected = {("default", n) for n in values} | {("other space", "second")}
        while time.monotonic() < deadline:
            if (mirror / "MANIFEST.json").exists():
                held = {(o["namespace"], o["name"]) for o in Brain.list_dump(mirror)["objects"]}
                if held == expected:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"sync did not mirror the store within 30 s: {(tmp_path / 'sync.log').read_text()}")
    finally:
        sync.send_signal(signal.SIGKILL)
        sync.wait()
        log.close()
    store = brain.url
    brain.close()
    remove_store(store)
    reopened = Brain(url=store, persist=mirror)
    assert_same(reopened, values)


def test_a_one_gib_array_survives_dump_and_restore(brain: Brain, tmp_path: Path) -> None:
    big = np.arange(1 << 27, dtype=np.float64)  # 1 GiB
    big[::4096] = np.random.default_rng(7).random(len(big[::4096]))
    brain["big"] = big
    report = brain.dump(tmp_path / "dump", level=1)
    assert report["payload_bytes"] >= 1 << 30
    store = brain.url
    brain.close()
    remove_store(store)
    restored = Brain(url=store, persist=tmp_path / "dump")
    assert restored.restored is not None
    got = restored["big"]
    assert got.shape == big.shape and got.dtype == big.dtype
    assert np.array_equal(got, big)
