"""brain-plasma's test double, for tests that move over by changing an import.

brain-plasma's tests passed ``Brain(ClientClass=MockPlasmaClient)``, which
kept that Brain's objects in a dict of its own instead of a Plasma store.
brain gives such a Brain a store of its own in this process's memory (a
``memory://`` store), so the test stays away from the real store::

    from brain import Brain
    from brain.mock import MockPlasmaClient    # was: from brain_plasma.mock import ...

    brain = Brain(ClientClass=MockPlasmaClient)
    brain["this"] = "that"                     # in this Brain's memory store only

New tests can say it directly: ``Brain(url="memory://NAME")``, or take a
store that is dropped when the test ends::

    from brain.mock import memory_store

    def test_revenue(monkeypatch):
        with memory_store() as url:
            monkeypatch.setenv("BRAIN_URL", url)   # Brain() opens it
            ...
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from . import _brain

__all__ = ["MockPlasmaClient", "drop_memory_store", "memory_store"]


def drop_memory_store(name: str) -> bool:
    """Forgets the store ``memory://NAME``: its memory goes with the last
    Brain on it, and the name opens a new, empty store. Whether there was one."""
    return _brain.drop_memory_store(name)


@contextmanager
def memory_store(name: str | None = None) -> Iterator[str]:
    """The URL of a ``memory://`` store of its own (a new name unless
    ``name`` is given), dropped on leaving: a suite of many tests does not
    keep every test's objects until the process exits."""
    name = name if name is not None else f"test-{uuid.uuid4().hex}"
    try:
        yield f"memory://{name}"
    finally:
        _brain.drop_memory_store(name)


class MockPlasmaClient:
    """Passed as ``Brain(ClientClass=MockPlasmaClient)``: the Brain opens a
    store of its own in this process's memory. Not a client (brain has
    none); a class of this name from brain-plasma's test code does the same."""
