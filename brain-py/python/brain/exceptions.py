"""Exceptions raised by brain.

The class names are brain-plasma's, so ``except BrainNameNotExistError``
keeps working after the import changes. Every class derives from
:class:`BrainError`; several also derive from the built-in exception a
Python programmer would expect (``KeyError`` for a missing name, ``TypeError``
for an object that cannot be stored, ``OSError`` for I/O trouble), so
generic handlers work too.

Errors raised by the Rust core carry its details as attributes: for example
:class:`BrainStoreFullError` has ``needed``, ``used`` and ``capacity``. An
error about a place has ``location`` (a path or a store URL, as a string)
and, when the place is a file, ``path`` (a :class:`pathlib.Path`).
"""

from __future__ import annotations

__all__ = [
    "BrainError",
    "BrainNameNotExistError",
    "BrainNameTypeError",
    "BrainNameLengthError",
    "BrainNameEncodingError",
    "BrainReservedNameError",
    "BrainDescriptionError",
    "BrainNamespaceNameError",
    "BrainNamespaceNotExistError",
    "BrainNamespaceRemoveDefaultError",
    "BrainStoreFullError",
    "BrainUnsupportedObjectError",
    "BrainCodecError",
    "BrainUnpicklingError",
    "BrainColumnNotExistError",
    "BrainCorruptError",
    "BrainVersionError",
    "BrainKeyCollisionError",
    "BrainStorePathError",
    "BrainPermissionError",
    "BrainTimeoutError",
    "BrainLockTimeoutError",
    "BrainLockLostError",
    "BrainIOError",
    "BrainUnsupportedOperationError",
    "BrainStoreUrlError",
    "BrainBusyError",
    "BrainClientDisconnectedError",
    "BrainLearnNameError",
    "BrainRemoveOldNameValueError",
    "BrainUpdateNameError",
    "BrainDumpError",
    "BrainDumpIOError",
    "BrainDumpNotFoundError",
    "BrainCorruptDumpError",
    "BrainDumpVersionError",
    "BrainDumpConflictError",
]


class BrainError(Exception):
    """Base class of every brain exception."""

    def __str__(self) -> str:
        # KeyError quotes its argument; brain's messages read better plain.
        return str(self.args[0]) if self.args else ""


class BrainNameNotExistError(BrainError, KeyError):
    """No object has that name in the namespace."""


class BrainNameTypeError(BrainError, TypeError):
    """A name (or namespace) is not a ``str``."""


class BrainNameLengthError(BrainError, ValueError):
    """A name is empty or longer than the maximum (64 KiB of UTF-8)."""


class BrainNameEncodingError(BrainError, ValueError):
    """A name holds a lone surrogate (``"\\udc80"``, as ``os.fsdecode`` makes
    of bytes that are not UTF-8), which UTF-8 cannot encode: names are UTF-8
    text. (A namespace name raises ``BrainNamespaceNameError``.)"""


class BrainReservedNameError(BrainError, ValueError):
    """A name starts with ``"\\0brain-part\\0"``, which brain keeps for the parts
    of frames changed in place (hidden from ``names()``, removed by ``gc``)."""


class BrainDescriptionError(BrainError, ValueError):
    """A description is longer than the maximum (64 KiB of UTF-8), or holds a
    lone surrogate (which UTF-8 cannot encode)."""


class BrainNamespaceNameError(BrainError, ValueError):
    """A namespace name is empty, too long, not a ``str``, or holds a lone
    surrogate (which UTF-8 cannot encode)."""


class BrainNamespaceNotExistError(BrainError, LookupError):
    """No namespace has that name."""


class BrainNamespaceRemoveDefaultError(BrainError):
    """The ``default`` namespace cannot be removed."""


class BrainStoreFullError(BrainError):
    """The store has no room for the object; nothing was written or evicted.

    Attributes: ``needed``, ``used``, ``capacity``, ``free`` (bytes),
    ``objects`` (how many were to be written: 1 for a write), ``location``
    (and ``path`` for a shared-memory store), ``filesystem_full`` (True when
    the tmpfs itself ran out, or a Redis server reached its ``maxmemory``:
    ``used`` and ``capacity`` are then the server's), ``namespace`` and ``name`` (the object
    written), and what else explains it:

    - ``replacing``: bytes of the object this write replaces, which stay in
      use until the new one is published, so a replace needs room for both
      (deleting the name first makes room); 0 for a new name.
    - ``held``: when the filesystem ran out, bytes of deleted or replaced
      objects that processes still map (freed when they drop their views
      or exit); else 0.
    - ``holders``: the pids of those processes (a list of ``int``).

    A restore checks for room before it writes anything: its full store
    has ``needed`` (the most the restore holds at once), ``free`` as it
    was then, ``objects`` (how many it would write), ``namespace`` and
    ``name`` None, and ``replacing`` and ``held`` 0.
    """

    needed: int
    used: int
    capacity: int
    free: int
    objects: int
    filesystem_full: bool
    replacing: int
    held: int
    holders: list[int]


class BrainUnsupportedObjectError(BrainError, TypeError):
    """The object cannot be stored: no codec accepts it (not even pickle)."""


class BrainCodecError(BrainError, ValueError):
    """A stored payload could not be decoded as its codec says."""


class BrainUnpicklingError(BrainCodecError):
    """A pickled object could not be rebuilt in this process: pickle stores a
    class by its module and name, and this process cannot import it (a class
    defined in the writer's ``__main__``, a module missing here). The original
    error is the ``__cause__``."""


class BrainColumnNotExistError(BrainError, KeyError):
    """A stored table has no column of a name asked for
    (``brain.get(name, columns=[...])``).

    Attributes: ``namespace``, ``name``, ``missing`` (the names asked for
    that no column has) and ``columns`` (the table's columns, in order).
    """

    namespace: str
    name: str
    missing: list[object]
    columns: list[object]


class BrainCorruptError(BrainError):
    """An object file or control file in the store is damaged."""


class BrainVersionError(BrainError):
    """A file was written in a format version this release does not read."""


class BrainKeyCollisionError(BrainError):
    """Two names hashed to the same key (astronomically rare)."""


class BrainStorePathError(BrainError, OSError):
    """The store path is unusable: not a directory, a symlink, another user's, open to others, or
    a directory of other files that is not a store."""


class BrainPermissionError(BrainError, PermissionError):
    """The operating system denied access to the store."""


class BrainTimeoutError(BrainError, TimeoutError):
    """``wait_for`` gave up before the name appeared."""


class BrainLockTimeoutError(BrainTimeoutError):
    """Another process held a name's lock for longer than the timeout."""


class BrainLockLostError(BrainError):
    """A write made under a name's lock found the lock expired (its process
    was paused, say, past the lock's life on a Redis store), so nothing was
    written: take the lock again and redo the update."""


class BrainIOError(BrainError, OSError):
    """Any other operating-system error."""


class BrainUnsupportedOperationError(BrainError, NotImplementedError):
    """The store cannot do this: the operation belongs to another kind of store
    (``fsck()`` or ``store.preallocate()`` of a ``memory://`` store, say; its
    ``gc()`` collects only the parts of frames changed in place, and
    ``Brain(preallocate=...)`` does nothing there). The message says why."""


class BrainStoreUrlError(BrainError, ValueError):
    """A store URL could not be understood (an unknown scheme, an empty string)."""


class BrainBusyError(BrainError, TimeoutError):
    """The store was too busy to do this: writes in flight did not finish in
    time (``brain.store.fsck()`` rebuilds the usage count once they are
    done, and waits a minute for them). Try again, or find a writer that
    hangs (a process stopped in the middle of a large write, or one in
    another container sharing the store).

    Attributes: ``operation`` (what was to be done), ``waited`` (seconds),
    ``location`` (and ``path`` for a shared-memory store).
    """

    operation: str
    waited: float


class BrainClientDisconnectedError(BrainError):
    """The Brain was put to sleep (or closed); call ``wake_up()`` first."""


class BrainLearnNameError(BrainError):
    """Kept for brain-plasma compatibility; brain's writes are atomic and do not raise it."""


class BrainRemoveOldNameValueError(BrainError):
    """Kept for brain-plasma compatibility; brain's replaces are atomic and do not raise it."""


class BrainUpdateNameError(BrainError):
    """Kept for brain-plasma compatibility; brain's replaces are atomic and do not raise it."""


class BrainDumpError(BrainError):
    """A dump could not be written or restored."""


class BrainDumpIOError(BrainDumpError, OSError):
    """The filesystem of a dump failed a dump or restore (read-only, full,
    permission denied, a mount point in the way): its ``errno`` and
    ``filename`` say which."""


class BrainDumpNotFoundError(BrainDumpError, FileNotFoundError):
    """There is no dump at that path."""


class BrainCorruptDumpError(BrainDumpError):
    """A dump is truncated, damaged (checksum) or not a brain dump; nothing was restored."""


class BrainDumpVersionError(BrainDumpError):
    """A dump was written in a format version this release does not read; nothing was restored."""


class BrainDumpConflictError(BrainDumpError):
    """Names in the dump already exist in the store (``on_conflict='fail'``); nothing was restored."""
