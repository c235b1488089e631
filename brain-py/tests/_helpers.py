"""Assertions shared by the test modules."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from typing import Any

from brain import Brain, _brain

SHM = "/dev/shm"
PREFIX = "brain-pytest-"
BACKENDS = ("shm", "memory")


def new_store_url(backend: str, kind: str = "store") -> str:
    """The URL of a fresh, empty store: a new directory under /dev/shm, or a new memory:// name."""
    if backend == "shm":
        return "shm://" + tempfile.mkdtemp(dir=SHM, prefix=f"{PREFIX}{kind}-")
    if backend == "memory":
        return f"memory://{PREFIX}{kind}-{uuid.uuid4()}"
    raise ValueError(f"unknown backend {backend!r}")


def remove_store(url: str) -> None:
    """Removes a store made by new_store_url: its directory, or every namespace of a memory store.

    A memory store cannot be dropped from Python (it lives as long as the
    process); emptied, it holds nothing and is never opened again.
    """
    if url.startswith("shm://"):
        shutil.rmtree(url.removeprefix("shm://"), ignore_errors=True)
    elif url.startswith("memory://"):
        store = _brain.Store(url)
        for namespace in store.namespaces():
            store.remove_namespace(namespace)
        store.set_capacity(None)
    else:
        raise ValueError(f"not a store made by new_store_url: {url!r}")

# brain-core reads objects up to 64 KiB into private memory and maps larger
# ones (sharing one mapping between gets), so a value read with brain[name]
# and a separate brain.view(name) share an address only above that size.
# Tests of zero-copy therefore use objects larger than this.
MAPPED_MIN = 64 * 1024 + 1


def assert_inside(brain: Brain, name: str, address: int, nbytes: int) -> None:
    """The range [address, address + nbytes) lies inside the stored object's payload."""
    obj = brain.view(name)
    start, end = obj.address, obj.address + len(obj)
    assert len(obj) >= MAPPED_MIN, f"{name!r} is only {len(obj)} bytes: too small to be mapped"
    assert start <= address and address + nbytes <= end, (
        f"data at {address:#x}+{nbytes} lies outside {name!r}'s payload {start:#x}..{end:#x}: it was copied"
    )


def assert_array_zero_copy(brain: Brain, name: str, arr: Any) -> None:
    """A numpy array read from brain points into the stored object's memory."""
    assert_inside(brain, name, arr.__array_interface__["data"][0], arr.nbytes)


def assert_arrow_zero_copy(brain: Brain, name: str, table: Any) -> None:
    """Every non-empty buffer of a pyarrow Table/RecordBatch points into the stored object."""
    columns = table.columns
    checked = 0
    for column in columns:
        chunks = column.chunks if hasattr(column, "chunks") else [column]
        for chunk in chunks:
            for buf in chunk.buffers():
                if buf is not None and buf.size > 0:
                    assert_inside(brain, name, buf.address, buf.size)
                    checked += 1
    assert checked > 0, "no buffers to check"


def brain_object_of(arr: Any) -> Any:
    """The brain ``Object`` at the root of an array's ``.base`` chain, or None."""
    from brain import _brain

    base = arr
    while base is not None:
        if isinstance(base, memoryview):
            return base.obj if isinstance(base.obj, _brain.Object) else None
        if isinstance(base, _brain.Object):
            return base
        base = getattr(base, "base", None)
    return None
