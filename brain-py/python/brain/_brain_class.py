"""``Brain``: brain-plasma's API on brain's shared-memory store."""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
import reprlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _brain, _codecs, _frames, _progress
from ._codecs import _is_utf8
from ._progress import Progress
from ._types import DumpListing, DumpReport, Metadata, ObjectInfo, RestoreReport, UsageReport
from .exceptions import (
    BrainClientDisconnectedError,
    BrainDescriptionError,
    BrainNamespaceNameError,
    BrainNamespaceNotExistError,
    BrainNamespaceRemoveDefaultError,
    BrainNameEncodingError,
    BrainNameLengthError,
    BrainNameNotExistError,
    BrainNameTypeError,
    BrainReservedNameError,
)

class _Missing:
    """The default of an argument not given (``None`` is a value a user may give)."""

    def __repr__(self) -> str:
        return "<not given>"


_MISSING: Any = _Missing()
DEFAULT_NAMESPACE = "default"
# Rows a Brain shows in a notebook or a terminal; the rest are counted.
SHOWN_ROWS = 50
# Names longer than this many characters are cut in messages and tables.
NAME_SHOWN = 100

CAPACITIES = (
    "a number of bytes above zero (an int), a size such as '512K', '64M', '1.5G', '2GiB' or '10MB' "
    "(K, M, G, T and KiB, MiB, GiB, TiB are binary; KB, MB, GB, TB decimal), or 'none' for no limit"
)


def _shown(name: str) -> str:
    """``name`` quoted for a message; a long one cut, with its length (as the command does)."""
    if len(name) <= NAME_SHOWN:
        return repr(name)
    return f"{repr(name[:NAME_SHOWN])[:-1]}…{repr(name)[-1]} ({len(name.encode('utf-8', 'surrogatepass'))} bytes)"


PREALLOCATED = "a number of bytes (0 for none) or a size such as '512M' or '2GiB'"


def _capacity_bytes(value: object, call: str, expected: str = f"a capacity is {CAPACITIES}") -> int | None:
    """The bytes of a capacity given to ``call``, or None for no limit;
    ``expected`` says what ``call`` takes when ``value`` is not that."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{call}: {expected}; not a {type(value).__name__}")
    if isinstance(value, str):
        try:
            return _brain.parse_capacity(value)
        except ValueError as err:
            raise ValueError(f"{call}: {err}. {expected[0].upper()}{expected[1:]}") from None
    if value <= 0:
        raise ValueError(f"{call}: {value} bytes would refuse every write; {expected}")
    if value >= 2**64:
        raise ValueError(f"{call}: {value} bytes is more than any store can hold; {expected}")
    return value


def _user_path(path: str | os.PathLike[str]) -> str:
    """A path as given, with a leading ``~`` expanded as a shell would: a
    directory named ``~`` in the working directory is never what was meant."""
    return os.path.expanduser(os.fspath(path))


# brain-plasma's calls that brain does not have, and what to use instead.
_GONE = {
    "client": "there is no Plasma client; the store is files in shared memory, and brain.store its native handle",
    "reserved_names": "there is no Plasma client, and no names are reserved but the parts of frames",
    "dead": "there is no server process that could die: a store needs none",
    "show_namespaces": "use brain.namespaces()",
    "knowledge": "use brain.metadata(output='list')",
    "object_map": "use brain.metadata(output='dict') (each value_id is the name's id)",
}


# Names brain keeps for the parts of frames changed in place (brain-core's
# frames::PART_PREFIX): hidden from listings, and removed by `gc` when no frame
# references them.
_PART_PREFIX = "\0brain-part\0"


def _check_name(name: Any) -> str:
    if type(name) is not str:
        raise BrainNameTypeError(f"type of name {reprlib.repr(name)} must be str, not {type(name).__name__}")
    if name.startswith(_PART_PREFIX):
        raise BrainReservedNameError(
            f"name {reprlib.repr(name)} starts with {_PART_PREFIX!r}, which brain keeps for the parts of "
            "frames changed in place; choose another name"
        )
    if not _is_utf8(name):
        raise BrainNameEncodingError(_not_utf8("name", name))
    return name


def _check_namespace(namespace: Any, call: str) -> str:
    if type(namespace) is not str:
        raise BrainNamespaceNameError(f"{call}: namespace must be a str, not {type(namespace).__name__}")
    if not _is_utf8(namespace):
        raise BrainNamespaceNameError(f"{call}: {_not_utf8('namespace', namespace)}")
    return namespace


def _not_utf8(what: str, text: str) -> str:
    """Why ``text``, which holds a lone surrogate, cannot be stored."""
    at = next(i for i, char in enumerate(text) if "\ud800" <= char <= "\udfff")
    return (
        f"{what} {_shown(text)} holds a lone surrogate ({text[at]!r} at position {at}), which UTF-8 cannot "
        "encode (os.fsdecode and errors='surrogateescape' make them from bytes that are not UTF-8); "
        f"decode those bytes with errors='replace', or choose another {what}"
    )


def _meta(raw: ObjectInfo) -> Metadata:
    created = _dt.datetime.fromtimestamp(raw["created"], tz=_dt.timezone.utc)
    return {
        "name": raw["name"],
        "namespace": raw["namespace"],
        "description": raw["description"],
        "codec": raw["codec"],
        "size": raw["size"],
        "stored_size": raw["stored_size"],
        "created": created,
        "value_id": raw["value_id"],
        "metadata_id": raw["metadata_id"],
    }


class Brain(MutableMapping[str, Any]):
    """A namespace of named objects in shared memory, shared by every process of this user.

    ``brain["sales"] = df`` in one process, ``brain["sales"]`` in any other.
    There is no server to start: the store is a directory on ``/dev/shm``.

    Args:
        namespace: the namespace to start in (created if new).
        path: the store directory (a shared-memory store).
        url: the store, by URL: a path or ``shm://PATH`` for shared memory,
            ``memory://NAME`` for a store in this process's memory (for
            tests: everything in the process that opens the same name shares
            it), ``redis://[USER:PASSWORD@]HOST:PORT[/DB]`` (``rediss://``
            for TLS) or ``redis+cluster://HOST:PORT,HOST:PORT,...`` for a
            store on Redis shared by every host that reaches it. Default, when neither ``path`` nor ``url`` is given:
            ``$BRAIN_URL``, else ``$BRAIN_PATH``, else ``/dev/shm/brain-<uid>/default``.
        capacity: set the store's capacity (like Plasma's ``-m``): bytes as an
            int, a size string as the ``brain`` command takes it (``"64M"``,
            ``"1G"``, ``"512KiB"``), or ``"none"`` for no limit; default: keep
            the store's (a new store is limited only by its tmpfs).
        ClientClass: brain-plasma's client class. ``brain.mock.MockPlasmaClient``
            (or brain-plasma's class of that name) gives this Brain a store of
            its own in this process's memory, as brain-plasma's test double
            did, unless ``url`` names one; any other class is ignored, with a
            warning (brain has no client to choose).
        cache: where a Redis store caches what this host reads, so every
            process on the host shares one copy zero-copy: None (the host's
            default shared-memory store), a store directory, or False (or
            ``"off"``: no cache, every read fetches from the server). Other
            stores ignore it.
        consistency: how a Redis store validates cached reads: ``"tracked"``
            (default; no round trip while the server's invalidation stream is
            connected) or ``"strict"`` (one round trip per read).
        persist: a dump directory (default ``$BRAIN_PERSIST``, except for a
            ``memory://`` store, a test's own): when the store
            holds no objects (after a reboot or a wiped ``/dev/shm``), it is
            restored from there before the Brain is returned (with progress
            shown in a notebook or on a terminal). A restore that a killed
            process left part-way is finished, although the store is not
            empty.
        preallocate: memory to keep allocated for this process's writes, as
            Plasma's ``-m`` and Ray's ``object_store_memory`` do (bytes, or a
            size string as for ``capacity``): filled in the background, so a
            first write of a name goes as fast as a replacing one. A deleted
            object's memory goes back to it rather than to the system. It
            shows in ``brain stats`` as recycled (free for any write);
            ``brain gc`` (or ``Brain().store.gc()``) gives it back and ends it.
            A ``memory://`` store keeps nothing allocated: there it does
            nothing, so code that asks for it runs unchanged in a test.

    In a notebook a Brain shows as a table of its names; ``brain["`` completes names.
    """

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        path: str | os.PathLike[str] | None = None,
        ClientClass: Any = None,  # noqa: N803 (brain-plasma's spelling)
        *,
        url: str | None = None,
        capacity: int | str | None = None,
        persist: str | os.PathLike[str] | None = None,
        cache: str | os.PathLike[str] | bool | None = None,
        consistency: str | None = None,
        preallocate: int | str | None = None,
    ) -> None:
        mock = None
        if ClientClass is not None:
            if getattr(ClientClass, "__name__", None) == "MockPlasmaClient":
                if url is None:
                    import uuid

                    # brain-plasma's test double kept each Brain's objects
                    # in a dict of its own, gone with the Brain; and no dump
                    # restored into it.
                    mock = f"brain-plasma-mock-{uuid.uuid4().hex}"
                    url, path = f"memory://{mock}", None
            else:
                warnings.warn(
                    f"Brain(ClientClass={getattr(ClientClass, '__name__', ClientClass)!r}) is ignored: brain has no "
                    "client to choose; for a store of a test's own, pass url='memory://NAME' (or "
                    "ClientClass=brain.mock.MockPlasmaClient)",
                    stacklevel=2,
                )
        limit = _capacity_bytes(capacity, f"Brain(capacity={reprlib.repr(capacity)})") if capacity is not None else None
        # Refused before the store is opened (or made).
        _check_namespace(namespace, "Brain(namespace=...)")
        if not namespace:
            raise BrainNamespaceNameError("Brain(namespace=''): a namespace is a non-empty str; leave it out for 'default'")
        if url is not None and not isinstance(url, str):
            raise TypeError(
                "Brain(url=...): a URL is a str (a path, shm://PATH, memory://NAME or redis://HOST), "
                f"not a {type(url).__name__}"
            )
        if cache is not None and not isinstance(cache, (bool, str, os.PathLike)):
            raise TypeError(
                "Brain(cache=...): a cache is a store directory (str or path), None for the host's "
                f"default store, or False for none; not a {type(cache).__name__}"
            )
        # "off", as brain --cache off says it: not a directory of that name.
        cache_arg = cache if cache is None or isinstance(cache, bool) else False if cache == "off" else _user_path(cache)
        if url is not None and url.startswith("~"):
            url = _user_path(url)
        self._store: _brain.Store | None = _brain.Store(
            url, _user_path(path) if path is not None else None, limit, False, cache_arg, consistency
        )
        # The URL to reopen with (wake_up, unpickling). A Redis store's URL
        # as given keeps its password, which self.url shows as ***.
        self._url: str = self._store.url
        if self._url.startswith(("redis", "valkey")):
            self._url = url if url is not None else os.environ.get("BRAIN_URL", self._url)
        self._cache = cache_arg
        self._consistency = consistency
        if capacity is not None and limit is None:
            self._store.set_capacity(None)
        if preallocate is not None:
            # Like plasma_store -m: memory allocated and mapped ahead, filled
            # in the background, so first writes of names go at memory speed.
            # 0 (or "none") keeps nothing allocated, as leaving it out does.
            call = f"Brain(preallocate={reprlib.repr(preallocate)})"
            expected = f"memory to keep allocated is {PREALLOCATED}"
            if isinstance(preallocate, int) and not isinstance(preallocate, bool) and preallocate < 0:
                raise ValueError(f"{call}: {expected}")
            reserve = 0 if preallocate == 0 else _capacity_bytes(preallocate, call, expected)
            if reserve and not self._url.startswith("memory://"):
                self._store.preallocate(reserve)
        self.url: str = self._store.url
        store_path = self._store.path
        self.path: str | None = os.fspath(store_path) if store_path is not None else None
        # $BRAIN_PERSIST is the app's dump: a test's memory store starts empty.
        if persist is None and not self._url.startswith("memory://"):
            persist = os.environ.get("BRAIN_PERSIST") or None
        if mock is not None:
            persist = None
            weakref.finalize(self, _brain.drop_memory_store, mock)
        self.persist = _user_path(persist) if persist is not None else None
        self.restored = None
        if self.persist:
            with _progress.reporter(None, "Brain(persist=...)") as report:
                self.restored = _brain.auto_restore(self._store, self.persist, report)
        self.namespace = DEFAULT_NAMESPACE
        self.set_namespace(namespace)

    # ------------------------------------------------------------ plumbing

    @property
    def store(self) -> _brain.Store:
        """The native store; raises if the Brain is asleep."""
        if self._store is None:
            raise BrainClientDisconnectedError(
                "this Brain is asleep (sleep() or close() was called); call wake_up() to reconnect"
            )
        return self._store

    def __repr__(self) -> str:
        if self._store is None:
            state = "asleep"
        else:
            count = len(self)
            state = f"{count} name" if count == 1 else f"{count} names"
        return f"<Brain namespace={_shown(self.namespace)} url={self.url!r} ({state})>"

    # ------------------------------------------------------------ notebooks and terminals

    def _summary(self) -> tuple[str, list[ObjectInfo], int]:
        """The heading line, the first SHOWN_ROWS objects' metadata, and how many there are."""
        where = self.path if self.path is not None else self.url
        if self._store is None:
            return f"Brain (asleep): namespace {_shown(self.namespace)} of {where}; wake_up() reconnects", [], 0
        objects = self._store.list(self.namespace)
        usage: UsageReport = self._store.usage()
        total = sum(meta["size"] for meta in objects)
        noun = "name" if len(objects) == 1 else "names"
        if usage["capacity"] is not None:
            share = usage["used"] / usage["capacity"] if usage["capacity"] else 1.0
            room = (
                f"store: {_progress.size(usage['used'])} of {_progress.size(usage['capacity'])} "
                f"capacity used ({share:.0%})"
            )
        else:
            room = f"store: {_progress.size(usage['used'])} used, {_progress.size(usage['free'])} free (no capacity set)"
        heading = (
            f"Brain: namespace {_shown(self.namespace)} of {where}: {len(objects)} {noun}, "
            f"{_progress.size(total)}; {room}"
        )
        return heading, objects[:SHOWN_ROWS], len(objects)

    @staticmethod
    def _cell(text: str, width: int = 60) -> str:
        flat = text.replace("\n", "\\n").replace("\t", "\\t")
        return flat if len(flat) <= width else flat[: width - 1] + "…"

    def __str__(self) -> str:
        """The namespace as a text table: names, codecs, sizes, descriptions (``print(brain)``)."""
        heading, objects, count = self._summary()
        rows = [("NAME", "CODEC", "SIZE", "DESCRIPTION")]
        rows += [
            (self._cell(m["name"]), m["codec"], _progress.size(m["size"]), self._cell(m["description"]))
            for m in objects
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [heading]
        if objects:
            lines += [
                f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows
            ]
        if count > len(objects):
            lines.append(f"... and {count - len(objects)} more (brain.names() lists them all)")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython in a terminal shows the text table."""
        printer.text(repr(self) if cycle else str(self))

    def _repr_html_(self) -> str:
        """A notebook shows the namespace as an HTML table (every string escaped)."""
        heading, objects, count = self._summary()
        esc = html.escape
        cells = "".join(
            "<tr>"
            f"<td style=\"text-align:left\"><code>{esc(self._cell(m['name'], 80))}</code></td>"
            f"<td style=\"text-align:left\">{esc(m['codec'])}</td>"
            f"<td style=\"text-align:right\">{esc(_progress.size(m['size']))}</td>"
            f"<td style=\"text-align:left\">{esc(self._cell(m['description'], 80))}</td>"
            "</tr>"
            for m in objects
        )
        table = (
            "<table><thead><tr><th style=\"text-align:left\">name</th><th style=\"text-align:left\">codec</th>"
            "<th style=\"text-align:right\">size</th><th style=\"text-align:left\">description</th></tr></thead>"
            f"<tbody>{cells}</tbody></table>"
            if objects
            else ""
        )
        more = (
            f"<p>… and {count - len(objects)} more (<code>brain.names()</code> lists them all)</p>"
            if count > len(objects)
            else ""
        )
        return f'<div class="brain-store"><p>{esc(heading)}</p>{table}{more}</div>'

    def _ipython_key_completions_(self) -> list[str]:
        """The names IPython completes after ``brain["``: this namespace's."""
        return [] if self._store is None else self._store.names(self.namespace)

    def __enter__(self) -> Brain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # A Brain sent to another process (multiprocessing, Dash) reopens the
        # same store there (a memory:// store is that process's own).
        return (_reopen, (self.namespace, self._url, self._cache, self._consistency))

    # ------------------------------------------------------------ mapping protocol

    def __setitem__(self, name: str, thing: Any) -> None:
        self.learn(name, thing)

    def __getitem__(self, name: str) -> Any:
        return self.recall(name)

    def __delitem__(self, name: str) -> None:
        if not self._delete(_check_name(name)):
            raise BrainNameNotExistError(
                f"name {_shown(name)} does not exist in namespace {_shown(self.namespace)}; nothing was deleted"
            )

    # A handle on a store, as brain-plasma's Brain was: equal only to itself
    # and hashable (a Mapping would compare every stored value, and is not).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    if not TYPE_CHECKING:  # a type checker still refuses unknown attributes

        def __getattr__(self, attribute: str) -> Any:
            # Only for attributes a Brain lacks: brain-plasma's calls that
            # are gone say what replaced them.
            if attribute in _GONE:
                raise AttributeError(
                    f"Brain.{attribute} is a call of brain-plasma that brain does not have: {_GONE[attribute]}",
                    name=attribute,
                    obj=self,
                )
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {attribute!r}", name=attribute, obj=self
            )

    def __contains__(self, name: object) -> bool:
        # No name that could not be stored is in it: ``"" in brain`` is False,
        # as ``5 in brain`` is, not an error (brain-plasma looked it up in names()).
        if type(name) is not str or name.startswith(_PART_PREFIX) or not _is_utf8(name):
            return False
        try:
            return self.exists(name)
        except BrainNameLengthError:
            return False

    def __len__(self) -> int:
        return len(self.names())

    def clear(self) -> None:
        """Deletes every name in the current namespace, without reading their
        values (``MutableMapping.clear`` would read each, and stop at one this
        process cannot decode)."""
        for name in self.names():
            self._delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # ------------------------------------------------------------ brain-plasma API

    def learn(self, name: str, thing: Any, description: str | None = None) -> None:
        """Stores ``thing`` under ``name``, atomically replacing any old value.

        Replacing keeps the old description unless a new, non-empty one is
        given, as in brain-plasma. Readers holding the old value keep it intact.

        The copy runs without the GIL: another thread must not modify
        ``thing`` (a bytearray, a numpy array) while ``learn`` runs, or the
        stored value may mix old and new bytes.

        Raises:
            BrainNameTypeError: ``name`` is not a str.
            BrainUnsupportedObjectError: no codec can store ``thing``.
            BrainStoreFullError: the store has no room (nothing is evicted).
        """
        if isinstance(description, bool) and not description:
            description = None  # brain-plasma 0.2's default for "none given"
        if description is not None and not isinstance(description, str):
            raise TypeError(
                f"brain.learn(..., description=...): a description is a str or None, not a {type(description).__name__}"
            )
        if description is not None and not _is_utf8(description):
            raise BrainDescriptionError(f"brain.learn(..., description=...): {_not_utf8('description', description)}")
        _codecs.encode(self.store, self.namespace, _check_name(name), thing, description, _frames.write_table)

    def recall(self, name: str) -> Any:
        """The value of ``name``, zero-copy for arrays and tables.

        A numpy array is read-only (numpy has no copy-on-write: copy it to
        change it). A pandas frame copies a column on its first in-place
        change (pandas' copy-on-write), never writing to the store.

        Raises:
            BrainNameNotExistError: (a KeyError) no such name in this namespace.
        """
        value = self.store.recall(self.namespace, _check_name(name))
        if value is None:
            raise BrainNameNotExistError(
                f"name {_shown(name)} does not exist in namespace {_shown(self.namespace)}; "
                f"set it first, or list names with brain.names()"
            )
        if type(value) is str or type(value) is bytes:
            return value
        return _codecs.decode(value)

    def get(
        self,
        name: str,
        default: Any = None,
        *,
        as_arrow: bool = False,
        as_pandas: bool = False,
        as_polars: bool = False,
        verify: bool = False,
        columns: Sequence[Any] | None = None,
    ) -> Any:
        """The value of ``name``, or ``default`` when it does not exist.

        A stored table (written from pyarrow, pandas, polars or Rust) comes
        back as the writer's kind of object, or as the library asked for:
        ``as_arrow=True`` gives the pyarrow Table itself, the fastest form;
        ``as_pandas=True`` a pandas DataFrame, ``as_polars=True`` a polars
        DataFrame (a Series for a stored Series). A frame that was pickled
        (Arrow could not hold it exactly) reads back in its own library
        only: asked for as another's, it raises ``BrainCodecError``. Other
        values ignore them.

        ``columns=["price", "qty"]`` reads only those columns of a stored
        table, in that order, still zero-copy: the others are not even
        decoded, so a narrow read of a wide frame costs what its columns
        cost. A frame written from pandas is asked for by its column labels
        and keeps its index. A name no column has raises
        ``BrainColumnNotExistError`` (a ``KeyError``) listing the columns
        there are; a column named twice raises ``ValueError``; ``columns=``
        on an object that is not a table (or is a Series) raises
        ``TypeError``.

        ``verify=True`` first checks the stored bytes against the checksum
        their writer stored (a pass over every byte, about 0.05 s per GiB
        here): a payload changed since it was written raises
        ``BrainCorruptError`` instead of being returned.
        """
        if sum(map(bool, (as_arrow, as_pandas, as_polars))) > 1:
            raise ValueError("choose at most one of as_arrow, as_pandas and as_polars")
        obj = self.store.get(self.namespace, _check_name(name), verify)
        if obj is None:
            return default
        library = "arrow" if as_arrow else "pandas" if as_pandas else "polars" if as_polars else None
        return _codecs.decode(obj, library=library, columns=columns)

    def view(self, name: str) -> Any:
        """The raw stored payload as a read-only buffer (``memoryview(brain.view(n))``), no decoding."""
        obj = self.store.get(self.namespace, _check_name(name))
        if obj is None:
            raise BrainNameNotExistError(f"name {_shown(name)} does not exist in namespace {_shown(self.namespace)}")
        return obj

    def exists(self, name: str) -> bool:
        """Whether ``name`` exists in the current namespace."""
        return self.store.contains(self.namespace, _check_name(name))

    def forget(self, name: str) -> None:
        """Deletes ``name``; does nothing when it does not exist (as brain-plasma)."""
        self._delete(_check_name(name))

    def _delete(self, name: str) -> bool:
        # A frame in parts goes with its parts, under the name's lock (held
        # already inside ``update`` or ``with brain.lock(name)``).
        held = _frames.holds_lock(self.store, self.namespace, name)
        return bool(self.store.delete(self.namespace, name, held))

    def names(self, namespace: str | None = None) -> list[str]:
        """The names in the current namespace, another one, or ``'all'`` of them."""
        store = self.store
        if namespace == "all":
            return [name for ns in sorted(self.namespaces()) for name in store.names(ns)]
        return store.names(self.namespace if namespace is None else _check_namespace(namespace, "brain.names(namespace=...)"))

    def ids(self) -> list[str]:
        """The object ids (hex keys) of the names in the current namespace."""
        return [meta["value_id"] for meta in self.store.list(self.namespace)]

    def object_id(self, name: str) -> str | None:
        """The object id (hex key) of ``name``, or None when it does not exist."""
        return _brain.object_key(self.namespace, name) if self.exists(name) else None

    def object_ids(self) -> dict[str, str]:
        """``{name: object id}`` for the current namespace."""
        return {meta["name"]: meta["value_id"] for meta in self.store.list(self.namespace)}

    def metadata(self, *names: str, output: str = "dict") -> Any:
        """Metadata of one name (a dict, or None), or of several or all names.

        Each entry has ``name``, ``namespace``, ``description``, ``codec``,
        ``size``, ``stored_size``, ``created`` (a UTC datetime), ``value_id``
        and ``metadata_id``. With no names: every name in the namespace, as
        ``{name: meta}`` (``output='dict'``) or a list (``output='list'``).
        """
        if output not in ("dict", "list"):
            raise TypeError('output must be "list" or "dict"')
        store = self.store
        if len(names) == 1:
            raw = store.metadata(self.namespace, _check_name(names[0]))
            return _meta(raw) if raw is not None else None
        if names:
            metas = [store.metadata(self.namespace, _check_name(n)) for n in names]
            found = [_meta(m) if m is not None else None for m in metas]
            return dict(zip(names, found)) if output == "dict" else found
        every = [_meta(m) for m in store.list(self.namespace)]
        return {m["name"]: m for m in every} if output == "dict" else every

    def info(self, name: str) -> Metadata | None:
        """Metadata of one name (brain-plasma 0.2's spelling of ``metadata(name)``)."""
        raw = self.store.metadata(self.namespace, _check_name(name))
        return _meta(raw) if raw is not None else None

    def size(self) -> int:
        """The store's capacity in bytes: its own limit, else the size of the tmpfs
        under a shared-memory store, else what it holds and can still take."""
        usage = self.store.usage()
        if usage["capacity"] is not None:
            return usage["capacity"]
        return usage.get("filesystem_size", usage["used"] + usage["free"])

    # brain-plasma's attributes, read when asked for: opening a store needs
    # no figures (a Redis user allowed to read only may not ask the server
    # for its memory), and they are never stale.
    @property
    def bytes(self) -> int:
        """The store's capacity in bytes, as ``size()``."""
        return self.size()

    @property
    def mb(self) -> str:
        """``size()`` in megabytes, as text (``"50 MB"``)."""
        return f"{round(self.size() / 1_000_000)} MB"

    def used(self) -> int:
        """Bytes in use by objects in the store (all namespaces)."""
        return self.store.usage()["used"]

    def free(self) -> int:
        """Bytes that can still be written: ``size() - used()`` under a
        capacity, as in brain-plasma (less when the tmpfs under it has less
        room); without one, the room left on the tmpfs, which other stores and
        files share (so ``size() - used()`` can be more)."""
        return self.store.usage()["free"]

    def set_capacity(self, capacity: int | str | None) -> None:
        """Sets the store's capacity for every process: bytes, a size string
        (``"64M"``, ``"1G"``, ``"512KiB"``), or None or ``"none"`` for no limit but the tmpfs."""
        limit = _capacity_bytes(capacity, f"brain.set_capacity({reprlib.repr(capacity)})") if capacity is not None else None
        self.store.set_capacity(limit)

    # ------------------------------------------------------------ namespaces

    def set_namespace(self, namespace: str | None = None) -> str:
        """Switches to ``namespace`` (creating it), or returns the current one when None.

        Any non-empty str of up to 65,536 bytes of UTF-8 is a valid namespace
        (``BrainNamespaceNameError`` otherwise).
        """
        if namespace is None:
            return self.namespace
        _check_namespace(namespace, "brain.set_namespace(...)")
        self.store.create_namespace(namespace)
        self.namespace = namespace
        return self.namespace

    def namespaces(self) -> set[str]:
        """Every namespace in the store (always including ``'default'``)."""
        return set(self.store.namespaces()) | {DEFAULT_NAMESPACE}

    def remove_namespace(self, namespace: str | None = None) -> str:
        """Removes a namespace (default: the current one) and all its names.

        When the namespace removed is this handle's current one, the handle
        moves to ``'default'`` (as brain-plasma's did): later reads and
        writes go there. The returned message says which namespace is in
        use.

        Raises:
            BrainNamespaceRemoveDefaultError: for ``'default'``.
            BrainNamespaceNotExistError: when there is no such namespace.
        """
        namespace = self.namespace if namespace is None else _check_namespace(namespace, "brain.remove_namespace(...)")
        if namespace == DEFAULT_NAMESPACE:
            raise BrainNamespaceRemoveDefaultError(
                "cannot remove the default namespace; forget its names instead"
            )
        if namespace not in self.store.namespaces():
            raise BrainNamespaceNotExistError(
                f"namespace {_shown(namespace)} does not exist; list what exists with brain.namespaces()"
            )
        self.store.remove_namespace(namespace)
        if self.namespace == namespace:
            self.namespace = DEFAULT_NAMESPACE
        return f"Deleted namespace {namespace}. Using namespace {self.namespace}."

    # ------------------------------------------------------------ persistence

    def dump(
        self,
        path: str | os.PathLike[str],
        namespace: str | None = None,
        level: int = 3,
        *,
        progress: Progress = None,
    ) -> DumpReport:
        """Writes every namespace (or one) to a dump directory on disk, atomically.

        Each object is a complete value as of one moment; a crash mid-dump
        leaves the previous dump at ``path`` usable. ``level`` is zstd's.
        Returns a report: objects, namespaces, payload and compressed bytes.
        Dumping every namespace leaves out those of a host's read cache of a
        Redis server (``redis-cache-...``, listed in the report's
        ``cache_namespaces_left_out``): their objects are copies of what the
        server holds. Name one to dump it.

        ``progress``: None shows it in a notebook, or as a bar when standard
        error is a terminal, and nowhere else; True always, False never; a
        callable receives each report (a dict: ``phase``, ``bytes_done``,
        ``bytes_total``, ``objects_done``, ``objects_total``) about ten times
        a second. The dump cannot stop half-way: an exception the callable
        raises (or Ctrl-C) is raised once it is done.
        """
        with _progress.reporter(progress, "brain.dump(..., progress=...)") as report:
            if namespace is not None:
                _check_namespace(namespace, "brain.dump(namespace=...)")
            return _brain.dump(self.store, _user_path(path), namespace, level, report)

    def restore(
        self,
        path: str | os.PathLike[str],
        namespace: str | None = None,
        on_conflict: str = "fail",
        *,
        progress: Progress = None,
    ) -> RestoreReport:
        """Restores a dump: names, namespaces, descriptions and values.

        The whole dump is checked (versions, checksums, room in the store)
        before anything is written. ``on_conflict`` says what to do with
        names that already exist: ``'fail'`` (refuse, the default),
        ``'overwrite'`` or ``'skip'``. ``progress`` as for :meth:`dump`
        (two phases: ``verifying``, then ``restoring``).

        One restore of a store runs at a time: this waits for another that
        is running. A restore killed part-way leaves a mark in the dump's
        directory, so that ``Brain(persist=...)``, or a ``brain sync`` into
        that directory, finishes it and no sync takes the objects not yet
        restored for deleted ones; running it again with
        ``on_conflict='skip'`` finishes it too.

        Raises:
            BrainCorruptDumpError, BrainDumpVersionError, BrainDumpNotFoundError,
            BrainDumpConflictError, BrainStoreFullError: and the store is unchanged.
        """
        with _progress.reporter(progress, "brain.restore(..., progress=...)") as report:
            if namespace is not None:
                _check_namespace(namespace, "brain.restore(namespace=...)")
            return _brain.restore(self.store, _user_path(path), namespace, on_conflict, report)

    @staticmethod
    def list_dump(path: str | os.PathLike[str]) -> DumpListing:
        """What a dump holds: format version, generation and every object's metadata."""
        return _brain.list_dump(_user_path(path))

    # ------------------------------------------------------------ lifecycle

    def sleep(self) -> None:
        """Closes this process's handle on the store; ``wake_up()`` reopens it."""
        self._store = None

    def wake_up(self) -> None:
        """Reopens the store after ``sleep()``."""
        self._store = _brain.Store(self._url, None, None, False, self._cache, self._consistency)

    def close(self) -> None:
        """Closes the handle (objects stay in the store for other processes)."""
        self.sleep()

    # ------------------------------------------------------------ beyond brain-plasma

    def watch(self, namespace: str | None = None, all_namespaces: bool = False) -> _brain.Watcher:
        """Events as ``("set" | "deleted", namespace, name)`` tuples, for the
        current namespace (or ``namespace``, or every one with ``all_namespaces``).

        Iterate it to block for each event, or call ``next_event(timeout)``.
        """
        if namespace is not None:
            _check_namespace(namespace, "brain.watch(namespace=...)")
        return self.store.watch(None if all_namespaces else (self.namespace if namespace is None else namespace))

    def wait_for(self, name: str, timeout: float | None = 10.0) -> Any:
        """Blocks until ``name`` exists (at most ``timeout`` seconds), then returns its value.

        ``timeout=None`` (or ``float("inf")``) waits as long as it takes.

        On a Redis store, a server that restarts or is out of reach during the
        wait is waited out too.

        Raises:
            BrainTimeoutError: when it does not appear in time.
            BrainIOError: on a Redis store, when the server is still away at the end.
        """
        limit = math.inf if timeout is None else float(timeout)
        return _codecs.decode(self.store.wait_for(self.namespace, _check_name(name), limit))

    def _update_optimistic(self, name: str, fn: Callable[[Any], Any], default: Any) -> Any:
        """update(name, fn) with a compare-and-set of the version read instead of a lock."""
        store = self.store
        while True:
            found = store.get_versioned(self.namespace, _check_name(name))
            if found is None:
                if default is _MISSING:
                    raise BrainNameNotExistError(
                        f"name {_shown(name)} does not exist in namespace {_shown(self.namespace)}; "
                        "pass default= to start from a value"
                    )
                current, version = default, None
            else:
                current, version = _codecs.decode(found[0]), found[1]
            new = fn(current)
            with store.expect_version(self.namespace, name, version) as guard:
                try:
                    self.learn(name, new)
                except Exception:
                    if guard.conflicted:
                        continue  # another writer got there first: read its value and try again
                    raise
            return new

    def lock(self, name: str, timeout: float | None = None) -> _brain.Lock:
        """The cross-process lock on ``name``, as a context manager.

        Released on exit, and by the kernel if the holding process dies.
        Not re-entrant: while a thread holds it, ``update`` and the frame
        changes of that thread take no second lock.

        Raises:
            BrainLockTimeoutError: when another process holds it past ``timeout``.
            RuntimeError: this thread holds it already and ``timeout`` is None
                (the wait would never end).
        """
        if timeout is None and _frames.holds_lock(self.store, self.namespace, _check_name(name)):
            # flock is per open file: a second take would wait for this one
            # forever (with a timeout, it times out as any other wait).
            raise RuntimeError(
                f"this thread holds the lock on {_shown(name)} already, and locks are not re-entrant: "
                "change the value while holding it (brain[name] = ..., update() and the frame changes "
                "take no second lock)"
            )
        lock = self.store.lock(self.namespace, _check_name(name), timeout)
        # Frame changes made while this thread holds it do not wait for it.
        return _frames.remember_lock(self.store, self.namespace, name, lock)

    # ------------------------------------------------------------ frames changed in place

    def assign(self, name: str, columns: Mapping[str, Any] | None = None, /, **named: Any) -> None:
        """Adds columns to the stored frame ``name``, or replaces its columns
        of the same names, as ``DataFrame.assign`` does, writing only those
        columns: the others' memory is shared with the previous version.

        ``brain.assign("sales", margin=series, flag=array)``, or a mapping of
        labels to columns. Each column has one value per row of the frame,
        taken by position, or is a pandas Series, lined up with a pandas
        frame's index as ``DataFrame.assign`` lines it up (a label it lacks
        is missing; duplicate labels, or none in common, are refused), or is
        one scalar for every row, or is computed from the stored frame: a
        callable is called with it (``margin=lambda df: df.price - df.cost``,
        as ``DataFrame.assign`` does), a polars expression is selected from
        it (``z=pl.col("a") * 2``, as ``with_columns`` does), in order, each
        seeing the columns before it. The new
        version is published atomically: readers see the old frame or the
        new one, values they hold stay valid, watchers get one event.
        Changes from several processes are serialised by the name's lock
        (and compose with ``update`` and ``lock``, which hold it).

        Raises:
            BrainNameNotExistError: no such name.
            TypeError: the name holds something other than a table, or the
                new labels are not of the kind of the frame's (``"z"`` beside
                ``3`` and ``7``).
            ValueError: a column's length differs from the frame's.
            BrainUnsupportedObjectError: a new column of a polars frame holds
                Python objects (polars ``Object``).
        """
        given = dict(columns or {})
        given.update(named)
        _frames.assign(self.store, self.namespace, _check_name(name), given)

    def drop(self, name: str, columns: Sequence[Any]) -> None:
        """Drops ``columns`` from the stored frame ``name``, writing nothing
        but its new version's manifest (``DataFrame.drop(columns=...)``).

        Raises:
            BrainColumnNotExistError: a column the frame does not have (it lists those it has).
        """
        _frames.drop(self.store, self.namespace, _check_name(name), columns)

    def append(self, name: str, rows: Any) -> None:
        """Adds ``rows`` (a frame of the same kind, columns and types) after the
        stored frame's rows, writing only them; a name that does not exist
        is set to ``rows`` (a pyarrow RecordBatch becomes a Table, so that
        batches can be streamed in one by one). ``rows`` is a pandas or
        polars DataFrame or a pyarrow Table or RecordBatch, else TypeError.
        Types must match exactly, as ``pl.concat`` wants them: a Period of
        another frequency, an Interval closed on the other side, a polars
        Enum of other categories or an extension type of other parameters is
        refused (``BrainCodecError``), as its values would be read as the
        frame's type. The frame stays one table to every reader. A pandas frame with a
        RangeIndex keeps counting from where it ends (from 0, as
        ``pd.concat(..., ignore_index=True)``); any other index is appended
        as it is.

        A frame appended to many times is read as many pieces: ``compact``
        joins them again. A pandas frame that was pickled (a column Arrow
        cannot hold, such as dicts or mixed objects) takes rows of a pandas
        frame of the same columns by being written whole again.
        """
        _frames.append(self.store, self.namespace, _check_name(name), rows)

    def compact(self, name: str) -> bool:
        """Rewrites a frame changed in place as one piece (copying it once),
        so that it reads as fast as a frame written at once. False when the
        frame is stored whole already; ``BrainNameNotExistError`` when there
        is no such name, ``TypeError`` when it holds something other than a
        table."""
        return _frames.compact(self.store, self.namespace, _check_name(name))

    def update(
        self,
        name: Any = _MISSING,
        fn: Any = _MISSING,
        /,
        *,
        default: Any = _MISSING,
        optimistic: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """``update(name, fn)``: a read-modify-write of one name, safe across processes.

        Takes the name's lock, calls ``fn(current value)`` (``default`` when
        the name does not exist yet), stores the result and returns it.
        Arrays and frames come to ``fn`` read-only: return a new object.

        ``optimistic=True`` (a Redis store) takes no lock: the result is
        written only if the name still holds the version ``fn`` was given,
        and otherwise ``fn`` runs again on the newer value, so ``fn`` may run
        more than once. On other stores it is the same as the lock.

        ``update(mapping)`` / ``update(**names)`` set several names, as ``dict.update``
        (there ``default`` and ``optimistic`` are names like any other).

        Raises:
            TypeError: ``update(name, fn)`` with a keyword other than ``default``
                and ``optimistic``. To wait a bounded time for the lock, call it
                inside ``with brain.lock(name, timeout=...)``.
        """
        if callable(fn) and isinstance(name, str):
            if kwargs:
                given = ", ".join(f"{key}=" for key in kwargs)
                raise TypeError(
                    f"update(name, fn) takes default= and optimistic= only, not {given}; "
                    "to wait a bounded time for the name's lock, call it inside "
                    "`with brain.lock(name, timeout=...)`"
                )
            if optimistic and self.url.startswith(("redis", "valkey")):
                return self._update_optimistic(name, fn, default)
            # The name's lock, unless this thread holds it already
            # (`with brain.lock(name): brain.update(name, ...)`).
            with _frames.name_lock(self.store, self.namespace, _check_name(name)):
                current = self.get(name, _MISSING)
                if current is _MISSING:
                    if default is _MISSING:
                        raise BrainNameNotExistError(
                            f"name {_shown(name)} does not exist in namespace {_shown(self.namespace)}; "
                            "pass default= to start from a value"
                        )
                    current = default
                new = fn(current)
                self.learn(name, new)
                return new
        if fn is not _MISSING or isinstance(name, str):
            raise TypeError(
                f"update({reprlib.repr(name)}{'' if fn is _MISSING else ', ...'}): update(name, fn) needs a str name and "
                "a callable fn; to set several names, pass a mapping or name=value pairs"
            )
        items = {} if name is _MISSING else dict(name)
        if default is not _MISSING:
            items["default"] = default
        if optimistic is not None:
            items["optimistic"] = optimistic
        items.update(kwargs)
        for key, value in items.items():
            self.learn(key, value)
        return None


def _reopen(
    namespace: str, url: str, cache: str | bool | None = None, consistency: str | None = None
) -> Brain:
    """A Brain on the store at ``url``: how a pickled Brain comes back."""
    return Brain(namespace, url=url, cache=cache, consistency=consistency)
