"""The native module behind ``brain``: brain-core's stores for Python.

Applications use :class:`brain.Brain`; this module is its engine.
"""

import builtins
from collections.abc import Callable, Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Literal, final

from typing_extensions import Buffer, Self

from ._types import DumpListing, DumpReport, FsckReport, GcReport, ObjectInfo, ProgressReport, RestoreReport, UsageReport

__all__ = ["Store", "Writer", "Watcher", "Lock", "VersionGuard", "Object", "ArrowColumns", "Frame", "table_columns", "numeric_columns", "object_key", "default_store_path", "drop_memory_store", "__version__", "MAX_NAME_LEN", "dump", "restore", "auto_restore", "list_dump", "cli_main", "parse_capacity", "_core_error"]
__version__: str
MAX_NAME_LEN: int

def object_key(namespace: str, name: str) -> str:
    """The hex key of ``name`` in ``namespace``: the object's file name in the store."""

def drop_memory_store(name: str) -> bool:
    """Forgets the store at ``memory://NAME``: its memory goes with the last
    handle on it, and the name opens a new, empty store. Returns whether
    there was one."""

def default_store_path() -> Path:
    """``$BRAIN_PATH``, else ``/dev/shm/brain-<uid>/default``."""

def parse_capacity(text: str) -> int | None:
    """The bytes of a size as the ``brain`` command takes it (``64M``, ``1G``, ``512KiB``); None for ``none``.

    Raises ValueError, saying what is accepted, for anything else (and for zero).
    """

def _core_error(kind: Literal["busy", "filesystem_full"]) -> BaseException:
    """For the tests: the exception a brain-core error of this kind becomes (one a test cannot cause quickly)."""

def cli_main(argv: builtins.list[str], stdin_closed: builtins.bool = False) -> int:
    """Runs the ``brain`` command line (``argv[0]`` is the program) on this process's standard streams; returns the exit code.

    ``stdin_closed``: standard input was closed when the process started;
    reading it is then an error rather than an empty input."""

@final
class Object:
    """A stored object's payload, exported read-only through the buffer protocol (zero-copy).

    It keeps the store's memory alive: views of it stay valid after the name
    is replaced or deleted.
    """

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __len__(self) -> int: ...
    def tobytes(self) -> bytes:
        """A copy of the payload as ``bytes``."""
    def parts(self) -> builtins.list[Object]:
        """The parts of a parts-layout payload (ndarray, pickle-5), each over its range of this one's memory."""
    def ndarray(self) -> tuple[str, builtins.list[int], bool, Object]:
        """``(dtype as JSON, shape, fortran_order, data)`` of an ndarray object, checked against each other."""
    @property
    def codec(self) -> str:
        """``raw``, ``text``, ``arrow``, ``ndarray``, ``pickle5``, ``pandas`` or ``polars``."""
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def size(self) -> int:
        """The payload's length in bytes."""
    @property
    def address(self) -> int:
        """The address of the payload's first byte (to check zero-copy)."""

@final
class ArrowColumns:
    """Decoded columns of a stored table, for ``pyarrow.table(columns)``
    (the Arrow C stream interface, zero-copy), taken once."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

@final
class Frame:
    """A frame changed in place (stored in parts), as read: its manifest and
    every part it references, kept valid while this object lives."""

    @property
    def codec(self) -> str:
        """The codec it was written with: ``"arrow"``, ``"pandas"`` or ``"polars"``."""
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def size(self) -> int:
        """The bytes its parts hold."""
    @property
    def rows(self) -> int: ...
    @property
    def part_count(self) -> int: ...
    @property
    def whole(self) -> bool:
        """Whether its one part is the whole frame, schema and metadata included."""
    def schema_ipc(self) -> bytes:
        """Its schema (with metadata) as an Arrow IPC file without batches."""
    def parts(self) -> builtins.list[Object]:
        """Its parts, in the manifest's order (zero-copy)."""
    def columns(self) -> builtins.list[builtins.list[tuple[int, int, int]]]:
        """For each column, its chunks in row order: ``(part index, field index in the part, rows)``."""

def numeric_columns(
    obj: Object | Frame, fields: builtins.list[str]
) -> tuple[
    tuple[builtins.list[Object], builtins.list[str], builtins.list[str]] | None,
    tuple[ArrowColumns | None, builtins.list[str], dict[bytes, bytes], builtins.list[str], builtins.list[int]],
]:
    """The fields ``fields`` of the table ``obj``, picked and decoded once:
    ``(numbers, picked)``. ``numbers``, when each column picked holds numbers
    without nulls in one piece: ``(for each, an Object whose buffer is the
    column's values, the field names, their Arrow types as pyarrow names
    them ("double", "int64", ...))``; else None. ``picked`` is what
    ``table_columns`` returns for them (its metadata is theirs too)."""

def table_columns(
    obj: Object | Frame, fields: builtins.list[str]
) -> tuple[ArrowColumns | None, builtins.list[str], dict[bytes, bytes], builtins.list[str], builtins.list[int]]:
    """The fields ``fields`` of the table ``obj`` holds, decoded alone, in
    that order (a frame written from pandas brings its index columns, last):
    ``(columns, the table's columns when some fields are missing (else an
    empty list), the schema metadata of those picked (pandas' cut down to
    them), the fields no column has (then columns is None), each picked
    column's position among the table's columns)``. A second pick of the
    same fields of a table with the same footer (or a frame with the same
    manifest) reuses the first one's work."""

@final
class Writer:
    """An object being written; nothing is visible until ``commit()``.

    A writable binary file object, so ``pyarrow.ipc.new_file(writer, schema)``
    streams straight into the store.
    """

    def write(self, data: Buffer) -> int:
        """Appends a buffer (without the GIL when it is large); returns its length."""
    def writelines(self, buffers: Iterable[Buffer]) -> None:
        """Appends several buffers in order, copied before it returns (on a
        shared-memory store, many small ones as one copy split across cores)."""
    def tell(self) -> int: ...
    def flush(self) -> None: ...
    def writable(self) -> bool: ...
    def seekable(self) -> bool: ...
    def close(self) -> None:
        """Neither publishes nor discards: call ``commit()`` or ``abort()``."""
    @property
    def closed(self) -> bool: ...
    def commit(self) -> ObjectInfo:
        """Publishes the object atomically; returns its metadata."""
    def abort(self) -> None:
        """Discards what was written."""

@final
class Watcher:
    """A stream of ``("set" | "deleted", namespace, name)`` events; a context
    manager that closes it on exit."""

    def next_event(self, timeout: float | None = None) -> tuple[str, str, str] | None:
        """The next event, waiting at most ``timeout`` seconds; None on timeout.

        ``timeout=0`` polls: it returns an event already made, or None at once.
        RuntimeError in a process forked after the watcher was made: make a
        new one there."""
    def __iter__(self) -> Iterator[tuple[str, str, str]]: ...
    def __next__(self) -> tuple[str, str, str]:
        """The next event; iteration ends once the watcher is closed."""
    def close(self) -> None:
        """Stops watching, giving back what the watcher holds now; a no-op when closed."""
    @property
    def closed(self) -> bool:
        """Whether close() was called (or the watcher was made in the parent
        of this forked process, where it cannot be used)."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...

@final
class Lock:
    """A held lock on one name; released on exit, and when the holder dies."""

    def release(self) -> None: ...
    @property
    def held(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...

@final
class VersionGuard:
    """A compare-and-set in force on one name of a Redis store; ended on exit."""

    @property
    def conflicted(self) -> bool:
        """Whether a write or delete was refused because another writer changed the name first."""
    def release(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...

@final
class Store:
    """A brain store opened by this process, of any backend."""

    def __new__(
        cls,
        url: str | None = None,
        path: str | PathLike[str] | None = None,
        capacity: int | None = None,
        checksums: bool = False,
        cache: str | PathLike[str] | bool | None = None,
        consistency: str | None = None,
    ) -> Self:
        """Opens the store at ``url`` (a path, ``shm://PATH``, ``memory://NAME`` or a Redis URL) or ``path``;
        with neither, ``$BRAIN_URL``, else ``$BRAIN_PATH``, else ``/dev/shm/brain-<uid>/default``.
        ``cache`` and ``consistency`` are a Redis store's host cache (None: the host's default store;
        a directory; False: none) and validation (``"tracked"`` or ``"strict"``)."""
    @property
    def path(self) -> Path | None:
        """The store's directory; None for a store with none (``memory://``)."""
    @property
    def url(self) -> str:
        """``shm:///dev/shm/...``, ``memory://NAME`` or the Redis URL (its password shown as ``***``)."""
    @property
    def location(self) -> str:
        """Where the store is, as errors name it."""
    def put(
        self,
        namespace: str,
        name: str,
        codec_name: str,
        parts: builtins.list[Buffer],
        description: str | None = None,
    ) -> ObjectInfo:
        """Writes the concatenation of ``parts`` as one object (one copy).

        A ``description`` of None (or ``""``) keeps the replaced object's description.
        """
    def put_ndarray(
        self,
        namespace: str,
        name: str,
        dtype: str,
        shape: builtins.list[int],
        fortran_order: bool,
        data: Buffer,
        description: str | None = None,
    ) -> ObjectInfo:
        """Writes an ndarray object: NumPy's dtype description as JSON, the shape, and the elements."""
    def put_pickle(
        self,
        namespace: str,
        name: str,
        stream: Buffer,
        buffers: builtins.list[Buffer],
        description: str | None = None,
    ) -> ObjectInfo:
        """Writes a pickle-5 object: the stream and its out-of-band buffers."""
    def put_text(self, namespace: str, name: str, text: str, description: str | None = None) -> None: ...
    def preallocate(self, bytes: int, wait: bool = False) -> int:
        """Keeps ``bytes`` of memory allocated for this process's writes; the bytes allocated when waiting."""
    def get(self, namespace: str, name: str, verify: bool = False, current: bool = False) -> Object | Frame | None:
        """The object (a ``Frame`` for a frame changed in place), or None; with ``verify``, checked against its
        stored checksum first; with ``current``, as the store holds it now (a Redis store asks the server)."""
    def recall(self, namespace: str, name: str) -> str | bytes | Object | Frame | None:
        """``str`` for text, ``bytes`` for raw, an ``Object`` otherwise; None when absent."""
    def metadata(self, namespace: str, name: str) -> ObjectInfo | None: ...
    def list(self, namespace: str) -> builtins.list[ObjectInfo]: ...
    def names(self, namespace: str) -> builtins.list[str]: ...
    def namespaces(self) -> builtins.list[str]: ...
    def contains(self, namespace: str, name: str) -> bool: ...
    def delete(self, namespace: str, name: str, lock_held: bool = False) -> bool: ...
    def create_namespace(self, namespace: str) -> None: ...
    def remove_namespace(self, namespace: str) -> int: ...
    def usage(self) -> UsageReport: ...
    def set_capacity(self, capacity: int | None) -> None: ...
    def writer(
        self,
        namespace: str,
        name: str,
        codec_name: str,
        description: str | None = None,
        expected_len: int | None = None,
    ) -> Writer: ...
    def part_writer(self, namespace: str, name: str, expected_len: int | None = None) -> tuple[str, Writer]:
        """A streamed write of a new part of frame ``name``: ``(part id, Writer)``."""
    def change_frame(
        self,
        namespace: str,
        name: str,
        change: Literal["replace", "assign", "append", "drop"],
        codec_name: str,
        part: str | None = None,
        columns: builtins.list[str] | None = None,
        metadata: dict[bytes, bytes] | None = None,
        description: str | None = None,
    ) -> ObjectInfo:
        """Publishes a change to frame ``name`` as its new version (the caller holds the name's lock)."""
    def discard_part(self, namespace: str, name: str, part: str) -> None: ...
    def compact_frame(self, namespace: str, name: str) -> ObjectInfo | None:
        """Rewrites a frame changed in place as one part; None for a table stored
        whole. Raises BrainNameNotExistError for a missing name."""
    def watch(self, namespace: str | None = None) -> Watcher: ...
    def wait_for(self, namespace: str, name: str, timeout: float) -> Object: ...
    def lock(self, namespace: str, name: str, timeout: float | None = None) -> Lock: ...
    def version(self, namespace: str, name: str) -> str | None:
        """A Redis store's version of the name; other stores raise BrainUnsupportedOperationError."""
    def get_versioned(self, namespace: str, name: str) -> tuple[Object, str] | None:
        """A Redis store's object and the version it is of (one round trip), or None."""
    def expect_version(self, namespace: str, name: str, version: str | None = None) -> VersionGuard:
        """This thread's writes of the name publish only while it holds ``version`` (None: while absent)."""
    def gc(self) -> GcReport:
        """Removes what dead writers left and frame parts no version references; a store that keeps
        nothing a dead writer could leave (memory://) has only the parts to collect (the other figures are 0)."""
    def fsck(self, delete_corrupt: bool = False) -> FsckReport:
        """Raises BrainUnsupportedOperationError for a store that cannot be damaged (memory://)."""
    def clear_cache(self) -> None: ...

def dump(
    store: Store,
    path: str,
    namespace: str | None = None,
    level: int = 3,
    progress: Callable[[ProgressReport], object] | None = None,
) -> DumpReport:
    """Writes a dump of the store (or one namespace) to ``path``, atomically (GIL released).

    ``progress`` is called with the GIL taken, at most about ten times a second
    and at the start and end of each phase; an exception it raises is raised
    once the dump is done.
    """

def restore(
    store: Store,
    path: str,
    namespace: str | None = None,
    on_conflict_name: str = "fail",
    progress: Callable[[ProgressReport], object] | None = None,
) -> RestoreReport:
    """Restores a dump after checking all of it (GIL released); ``progress`` as for ``dump``."""

def auto_restore(
    store: Store, path: str, progress: Callable[[ProgressReport], object] | None = None
) -> RestoreReport | None:
    """Restores from ``path`` if the store holds no objects, or finishes a restore from it that a
    killed process left part-way; None when nothing was done."""

def list_dump(path: str) -> DumpListing:
    """What a dump holds."""
