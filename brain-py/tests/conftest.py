"""Fixtures: every test gets its own store on /dev/shm, removed afterwards.

No test may touch the user's default store: for the whole session
``BRAIN_PATH`` points at a throwaway store, so even ``Brain()`` without a
path (and every spawned child process, which inherits the environment)
lands there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brain import Brain

SHM = "/dev/shm"
PREFIX = "brain-pytest-"


def _new_store_dir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(dir=SHM, prefix=f"{PREFIX}{kind}-"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_default_store() -> Iterator[Path]:
    """Points BRAIN_PATH at a temporary store for the whole session."""
    path = _new_store_dir("session")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BRAIN_PATH", str(path))
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store_path() -> Iterator[Path]:
    """A fresh, empty store directory under /dev/shm, removed after the test (pass or fail)."""
    path = _new_store_dir("store")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def brain(store_path: Path) -> Iterator[Brain]:
    """A Brain on this test's own store."""
    b = Brain(path=store_path)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def default_store(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Makes this test's store the default one: ``Brain()`` opens it."""
    monkeypatch.setenv("BRAIN_PATH", str(store_path))
    return store_path

