"""Recycling seen from Python: replaced objects' pages are reused, held
arrays never change, and a fork in the middle of a write locks nothing.

A memory store recycles nothing (a replaced value is freed when its last
reader lets go of it); that held arrays never change is tested on it too."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from brain import Brain

MIB = 1 << 20


def test_replacing_a_large_array_keeps_held_arrays(brain: Brain) -> None:
    first = np.arange(MIB, dtype=np.float64)  # 8 MiB
    brain["x"] = first
    held = brain["x"]
    for round in range(1, 5):
        brain["x"] = first + round
        assert np.array_equal(held, first), f"round {round}: a held array changed"
        assert np.array_equal(brain["x"], first + round)
    del brain["x"]
    assert np.array_equal(held, first), "a held array changed when its name was deleted"


@pytest.mark.shm_only("recycling keeps replaced objects' tmpfs files for reuse; gc() empties that pool")
def test_replacing_a_large_array_reuses_the_old_pages_and_held_arrays_stay(brain: Brain) -> None:
    first = np.arange(MIB, dtype=np.float64)  # 8 MiB
    brain["x"] = first
    held = brain["x"]
    for round in range(1, 5):
        brain["x"] = first + round
        assert np.array_equal(held, first), f"round {round}: a held array changed"
    assert brain.store.usage()["recycled"] > 0
    assert np.array_equal(brain["x"], first + 4)
    report = brain.store.gc()
    assert report["recycled_objects"] >= 1 and report["recycled_bytes"] >= 8 * MIB
    assert brain.store.usage()["recycled"] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.shm_only("a forked child sharing the writer's file lock, over a recycled tmpfs file")
def test_a_child_forked_during_a_write_does_not_lock_the_object(brain: Brain) -> None:
    value = b"\x07" * (3 * MIB)
    brain["old"] = value
    brain["old"] = value  # the first file now waits in the pool
    assert brain.store.usage()["recycled"] > 0
    writer = brain.store.writer(brain.namespace, "new", "raw", None, len(value))  # takes the pooled file
    child = os.fork()
    if child == 0:  # shares the writer's open file, and would share its lock
        time.sleep(30)
        os._exit(0)
    try:
        writer.write(value)
        writer.commit()
        started = time.monotonic()
        assert brain["new"] == value
        assert time.monotonic() - started < 5, "the read waited for the child"
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
