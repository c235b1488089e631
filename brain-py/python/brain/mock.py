"""brain-plasma's test double, for tests that move over by changing an import.

brain-plasma's tests passed ``Brain(ClientClass=MockPlasmaClient)``, which
kept that Brain's objects in a dict of its own instead of a Plasma store.
brain gives such a Brain a store of its own in this process's memory (a
``memory://`` store), so the test stays away from the real store::

    from brain import Brain
    from brain.mock import MockPlasmaClient    # was: from brain_plasma.mock import ...

    brain = Brain(ClientClass=MockPlasmaClient)
    brain["this"] = "that"                     # in this Brain's memory store only

New tests can say it directly: ``Brain(url="memory://NAME")``.
"""

from __future__ import annotations

__all__ = ["MockPlasmaClient"]


class MockPlasmaClient:
    """Passed as ``Brain(ClientClass=MockPlasmaClient)``: the Brain opens a
    store of its own in this process's memory. Not a client (brain has
    none); a class of this name from brain-plasma's test code does the same."""
