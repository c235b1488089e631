"""The memory:// backend as users see it: a store in this process's own memory, for tests.

Everything else runs on it too (see conftest.py); these tests are about
opening it: by URL, through BRAIN_URL, what it shares and with whom, and
what it refuses.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _workers
from _helpers import new_store_url, remove_store
from brain import Brain
from brain.exceptions import BrainStoreUrlError, BrainUnsupportedOperationError

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh memory://pytest-... name, emptied after the test."""
    url = new_store_url("memory")
    try:
        yield url
    finally:
        remove_store(url)


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A fresh store directory under /dev/shm, removed after the test."""
    url = new_store_url("shm")
    try:
        yield Path(url.removeprefix("shm://"))
    finally:
        remove_store(url)


def test_brains_opening_one_memory_name_share_its_objects(memory_url: str) -> None:
    first = Brain(url=memory_url)
    first["array"] = np.arange(100_000, dtype="f8")
    first.set_namespace("other")
    first["x"] = "in other"
    second = Brain(url=memory_url)
    np.testing.assert_array_equal(second["array"], np.arange(100_000, dtype="f8"))
    assert second.view("array").address == first.store.get("default", "array").address  # the same memory
    assert second.namespaces() == {"default", "other"}
    assert second.names(namespace="other") == ["x"]
    del second["array"]
    assert first.names(namespace="default") == []


def test_another_memory_name_is_another_store(memory_url: str) -> None:
    Brain(url=memory_url)["x"] = 1
    other = new_store_url("memory")
    try:
        assert Brain(url=other).names(namespace="all") == []
    finally:
        remove_store(other)


def test_a_memory_store_outlives_its_brains(memory_url: str) -> None:
    with Brain(url=memory_url) as brain:
        brain["x"] = "kept"
    del brain
    gc.collect()
    assert Brain(url=memory_url)["x"] == "kept"


def test_another_process_opening_the_same_name_gets_a_store_of_its_own(memory_url: str) -> None:
    Brain(url=memory_url)["x"] = 1
    with SPAWN.Pool(1) as pool:
        assert pool.apply(_workers.names_in, (memory_url,)) == []
    assert Brain(url=memory_url).names() == ["x"]


def test_brain_url_names_the_default_store(memory_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAIN_URL", memory_url)
    default = Brain()
    assert default.url == memory_url and default.path is None
    default["x"] = "from Brain()"
    assert Brain(url=memory_url)["x"] == "from Brain()"
    # BRAIN_URL comes before BRAIN_PATH (the session's throwaway store).
    assert "x" not in Brain(path=os.environ["BRAIN_PATH"]).names(namespace="all")


def test_memory_store_drops_its_store_when_the_test_ends() -> None:
    from brain.mock import drop_memory_store, memory_store

    with memory_store() as url:
        Brain(url=url)["x"] = "for this test"
        assert Brain(url=url).names() == ["x"]
    assert Brain(url=url).names() == [], "the store outlived its block"
    assert drop_memory_store(url.removeprefix("memory://"))
    assert not drop_memory_store(url.removeprefix("memory://"))


def test_the_apps_dump_and_preallocation_leave_a_test_store_alone(
    memory_url: str, shm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Brain(path=shm_dir)
    app["from the app"] = 1
    app.dump(tmp_path / "dump")
    monkeypatch.setenv("BRAIN_PERSIST", str(tmp_path / "dump"))
    monkeypatch.setenv("BRAIN_URL", memory_url)
    brain = Brain(preallocate="1M")
    assert brain.names() == [] and brain.restored is None and brain.persist is None
    # Asked for by name, the dump is restored into it.
    assert Brain(persist=tmp_path / "dump").names() == ["from the app"]


def test_a_memory_store_without_a_capacity_reports_its_usage(memory_url: str) -> None:
    brain = Brain(url=memory_url)
    usage = brain.store.usage()
    assert usage["capacity"] is None
    assert "filesystem_size" not in usage and "filesystem_free" not in usage
    brain["x"] = np.zeros(1000)
    assert brain.used() >= 8000
    assert 0 < brain.free() <= brain.size()


def test_gc_collects_frame_parts_and_fsck_is_unsupported_and_says_why(memory_url: str) -> None:
    brain = Brain(url=memory_url)
    brain["x"] = 1
    # A frame changed in place, then replaced by something else: its parts
    # are left for gc, as on every store.
    brain["f"] = pd.DataFrame({"a": np.arange(100_000)})
    brain.assign("f", b=np.arange(100_000))
    brain["f"] = "now text"
    used = brain.used()
    report = brain.store.gc()
    assert report["frame_parts"] == 2 and report["frame_part_bytes"] > 1_600_000
    assert report["stray_objects"] == 0 and report["bytes_freed"] == 0
    assert brain.used() <= used - report["frame_part_bytes"]
    assert brain.store.gc()["frame_parts"] == 0
    for delete_corrupt in (False, True):
        with pytest.raises(BrainUnsupportedOperationError) as info:
            brain.store.fsck(delete_corrupt)
        assert memory_url in str(info.value) and "files" in str(info.value)
    assert brain["x"] == 1


def test_url_and_path(memory_url: str, shm_dir: Path) -> None:
    memory = Brain(url=memory_url)
    assert memory.url == memory_url and memory.path is None
    assert memory_url in repr(memory)
    shm = Brain(path=shm_dir)
    assert shm.url == f"shm://{shm_dir}" and shm.path == str(shm_dir)
    for url in (f"shm://{shm_dir}", str(shm_dir)):  # a plain path is a URL too
        again = Brain(url=url)
        assert again.url == shm.url and again.path == shm.path


@pytest.mark.parametrize(
    "url", ["ftp://x", "", "redis:127.0.0.1:6379", "redis//127.0.0.1:6379/0"],
    ids=["unknown scheme", "empty", "redis: without //", "redis// without :"],
)
def test_a_bad_url_is_a_store_url_error(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BrainStoreUrlError) as info:
        Brain(url=url)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "memory://NAME" in message and "shm://PATH" in message and "redis://" in message
    assert url in message
    assert not list(tmp_path.iterdir()), "no directory was made for it"
    if url:
        # From the environment, it is said to be: the caller gave none.
        monkeypatch.setenv("BRAIN_URL", url)
        with pytest.raises(BrainStoreUrlError, match=r"this is \$BRAIN_URL: fix or unset it"):
            Brain()
        assert not list(tmp_path.iterdir())


def test_a_url_given_as_a_cache_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="not a URL; the server's URL goes in url="):
        Brain(url="redis://127.0.0.1:1", cache="redis://127.0.0.1:1")
    assert not list(tmp_path.iterdir())


def test_a_path_and_a_url_together_are_a_value_error(memory_url: str, tmp_path: Path) -> None:
    path = tmp_path / "store"
    with pytest.raises(ValueError) as info:
        Brain(url=memory_url, path=path)
    assert "url" in str(info.value) and "path" in str(info.value)
    assert not path.exists()
