"""The shapes of the dicts brain returns, for type checkers and readers.

Every dict the native module and :class:`brain.Brain` return has a fixed
set of keys; these TypedDicts name them.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

__all__ = [
    "ObjectInfo",
    "Metadata",
    "UsageReport",
    "GcReport",
    "FsckReport",
    "DumpReport",
    "RestoreReport",
    "DumpObject",
    "DumpListing",
    "ProgressReport",
]


class _MetadataBase(TypedDict):
    name: str
    namespace: str
    description: str
    codec: str
    """``raw``, ``text``, ``arrow``, ``ndarray``, ``pickle5``, ``pandas`` or ``polars``."""
    size: int
    """The payload's length in bytes."""
    stored_size: int
    """Bytes the object takes in the store (header and payload, in whole pages)."""
    value_id: str
    """The object's key, as hex (brain-plasma's object id)."""
    metadata_id: str


class ObjectInfo(_MetadataBase):
    """An object's metadata as the native module returns it."""

    created: float
    """When it was written, in seconds since the Unix epoch."""
    parts: NotRequired[int]
    """For a frame changed in place: how many parts hold it (its codec and
    size are then the frame's: the writer's codec, its parts' bytes)."""


class Metadata(_MetadataBase):
    """An object's metadata as :meth:`brain.Brain.metadata` returns it."""

    created: datetime.datetime
    """When it was written (UTC)."""


class UsageReport(TypedDict):
    """Capacity and usage of a store, in bytes."""

    capacity: int | None
    """The store's own limit; None when only what holds it limits it."""
    used: int
    recycled: int
    """Bytes of replaced objects kept for later writes to reuse (counted as free)."""
    free: int
    filesystem_size: NotRequired[int]
    """A shared-memory store's tmpfs size."""
    filesystem_free: NotRequired[int]
    small_table: NotRequired[int]
    """A shared-memory store's table of small objects: its file's size
    (each small object counts in ``used`` as its own file would)."""
    held_by_views: NotRequired[int]
    """A shared-memory store's deleted or replaced objects that processes
    still map (a notebook holding a frame): off the store's count, but
    still taking memory until those views are dropped."""


class GcReport(TypedDict):
    """What ``gc()`` removed."""

    stray_objects: int
    stray_namespaces: int
    bytes_freed: int
    recycled_objects: int
    recycled_bytes: int
    reservations_reclaimed: int
    """Bytes that writers which died had reserved, given back."""
    frame_parts: int
    """Parts of frames changed in place that no frame referenced, removed."""
    frame_part_bytes: int


class FsckReport(TypedDict):
    """What ``fsck()`` found and did."""

    objects: int
    used_before: int
    used_after: int
    corrupt: list[tuple[str, str]]
    """(location, reason) of each object that failed its checks."""
    deleted: int
    recycled: int
    broken_frames: list[tuple[str, str, str]]
    """(namespace, name, reason) of each frame changed in place whose parts are missing or unreadable."""
    unreferenced_frame_parts: int
    """Parts no frame references (``gc()`` removes them)."""


class DumpReport(TypedDict):
    """What :meth:`brain.Brain.dump` wrote."""

    path: Path
    objects: int
    namespaces: int
    payload_bytes: int
    compressed_bytes: int
    #: Namespaces of a host's read cache of a Redis server (``redis-cache-...``),
    #: left out of a dump of every namespace: copies, fetched again when needed.
    cache_namespaces_left_out: list[str]
    seconds: float


class RestoreReport(TypedDict):
    """What :meth:`brain.Brain.restore` wrote."""

    path: Path
    restored: int
    skipped: int
    bytes: int
    seconds: float


class DumpObject(TypedDict):
    """One object in a dump."""

    namespace: str
    name: str
    codec: str
    description: str
    size: int
    """The payload's length; for a frame changed in place, its manifest's and parts' together."""
    compressed_size: int
    created: datetime.datetime
    """When it was written (UTC)."""


class DumpListing(TypedDict):
    """What :meth:`brain.Brain.list_dump` finds in a dump."""

    path: Path
    format_version: int
    generation: int
    namespace: str | None
    objects: list[DumpObject]


class ProgressReport(TypedDict):
    """How far a dump or restore is, as its ``progress`` callback receives it."""

    phase: Literal["dumping", "verifying", "restoring", "working"]
    """``dumping``; or, for a restore, ``verifying`` (every checksum is read
    before anything is written) then ``restoring``."""
    bytes_done: int
    """Uncompressed payload bytes done in this phase."""
    bytes_total: int
    objects_done: int
    objects_total: int
