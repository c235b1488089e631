"""Frames that change in place: ``Brain.assign``, ``Brain.drop``,
``Brain.append`` and ``Brain.compact``.

A frame changed this way is stored in parts (brain-core's ``frames``): Arrow
IPC files each holding some columns for some rows, under one manifest
stored under the frame's name. A change writes only its new part and
publishes a new manifest, atomically; the unchanged columns' memory is
shared between the versions. Every reader (pandas, polars, pyarrow, Rust,
``brain cat``) sees an ordinary frame.

This module turns pandas, polars and pyarrow values into parts in the
frame's own form (pandas' metadata and brain's dtype restores move with
the columns), and holds the name's lock while it changes the frame,
without taking it twice in a thread that already holds it (an
``update``, or ``with brain.lock(name)``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import _brain, _codecs
from ._codecs import KIND_KEY, PANDAS_DTYPES_KEY, _module
from .exceptions import BrainCodecError, BrainNameNotExistError, BrainUnsupportedObjectError

# Tables written whole at least this large are stored in parts from the
# start, so that their first change writes only what changes. A smaller
# frame is copied into a part of its own by its first change (at memory
# speed: a few milliseconds at this size).
PARTS_FROM_BYTES = 64 << 20

# The name locks this thread (or asyncio task: each has its own context)
# holds, by (store, namespace, name). Replaced, never changed in place, so
# a context copied into a new task does not share later additions. Weak: a
# lock its holder dropped is released when collected, as any other.
_HELD: contextvars.ContextVar[dict[tuple[str, str, str], weakref.ref[_brain.Lock]]] = contextvars.ContextVar(
    "brain_held_locks"
)


def _held(key: tuple[str, str, str]) -> _brain.Lock | None:
    """The lock this thread holds under ``key``, if it is still held."""
    ref = _HELD.get({}).get(key)
    lock = ref() if ref is not None else None
    return lock if lock is not None and lock.held else None


def remember_lock(store: Any, namespace: str, name: str, lock: _brain.Lock) -> _brain.Lock:
    """Notes that this thread holds ``lock`` on a name, so frame changes
    made while it is held do not wait for it (a released lock is ignored)."""
    held = {key: ref for key, ref in _HELD.get({}).items() if _held(key) is not None}
    held[(store.location, namespace, name)] = weakref.ref(lock)
    _HELD.set(held)
    return lock


def holds_lock(store: Any, namespace: str, name: str) -> bool:
    """Whether this thread (or task) holds the name's lock."""
    return _held((store.location, namespace, name)) is not None


@contextlib.contextmanager
def name_lock(store: Any, namespace: str, name: str) -> Iterator[None]:
    """Holds the name's lock for a change, unless this thread holds it already."""
    key = (store.location, namespace, name)
    if _held(key) is not None:
        yield
        return
    with store.lock(namespace, name) as lock:
        token = _HELD.set({**_HELD.get({}), key: weakref.ref(lock)})
        try:
            yield
        finally:
            _HELD.reset(token)


def _kind_of(value: Any) -> str:
    """A value's type with its library, as an error names it: ``a polars DataFrame``."""
    kind = type(value)
    library = kind.__module__.split(".")[0]
    return f"a {library} {kind.__name__}" if library != "builtins" else f"a {kind.__name__}"


def holds_parts(store: Any, namespace: str, name: str) -> bool:
    """Whether ``name`` holds a frame in parts (whose parts a replace must give back)."""
    meta = store.metadata(namespace, name)
    return meta is not None and "parts" in meta


def _pa() -> Any:
    return _module("pyarrow") or __import__("pyarrow")


def write_part(store: Any, namespace: str, name: str, table: Any, length: int | None = None) -> str:
    """Stores ``table`` as a new part of frame ``name``; its id."""
    pa = _codecs._pyarrow_ipc()
    if length is None:
        length = _codecs.ipc_file_len(table)
    part, writer = store.part_writer(namespace, name, length)
    try:
        _codecs.stream_ipc(pa, writer, table)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return str(part)


def _publish(
    store: Any,
    namespace: str,
    name: str,
    change: str,
    codec: str,
    table: Any,
    metadata: dict[bytes, bytes] | None = None,
    description: str | None = None,
    length: int | None = None,
) -> None:
    part = write_part(store, namespace, name, table, length)
    try:
        store.change_frame(namespace, name, change, codec, part=part, metadata=metadata, description=description)
    except BaseException:
        store.discard_part(namespace, name, part)
        raise


def write_table(
    store: Any, namespace: str, name: str, codec: str, table: Any, description: str | None, length: int | None
) -> None:
    """Writes a table for ``_codecs.encode``: one of 64 MiB or more as a frame
    of one part (its first change then writes only what changes), and one
    written over a frame in parts the same way (the old parts are given
    back); any other whole, as one object."""
    if length is None:
        length = _codecs.ipc_file_len(table)
    if length >= PARTS_FROM_BYTES or holds_parts(store, namespace, name):
        write_whole(store, namespace, name, codec, table, description, length)
    else:
        _codecs._write_arrow(store, namespace, name, codec, table, description, length)


def write_whole(
    store: Any, namespace: str, name: str, codec: str, table: Any, description: str | None, length: int | None = None
) -> None:
    """Writes ``table`` (a large one) as a frame of one part, replacing the name."""
    with name_lock(store, namespace, name):
        _publish(store, namespace, name, "replace", codec, table, description=description, length=length)


# ------------------------------------------------------------ the stored frame


def _not_a_table(name: str, codec: str) -> TypeError:
    return TypeError(
        f"object {name!r} is stored as {codec}, not as a table: assign, drop, append and compact "
        "change stored tables (pyarrow, pandas or polars); pickled frames are read and written whole"
    )


class _Stored:
    """What a change needs of the stored frame: its codec, schema and rows."""

    def __init__(self, store: Any, namespace: str, name: str) -> None:
        pa = _pa()
        # The lock is held: read what the last holder published, not a cached copy.
        obj = store.get(namespace, name, current=True)
        if obj is None:
            raise BrainNameNotExistError(
                f"name {name!r} does not exist in namespace {namespace!r}; store a frame there first"
            )
        if obj.codec not in _codecs.LIBRARIES:
            raise _not_a_table(name, obj.codec)
        self.name, self.namespace, self.codec = name, namespace, obj.codec
        self._obj = obj
        self._index: Any = None
        if isinstance(obj, _brain.Frame):
            self.rows = int(obj.rows)
            self.schema = _codecs.frame_schema(pa, obj)
        else:
            table = _codecs.read_arrow(obj)
            self.rows, self.schema = table.num_rows, table.schema
        self.metadata: dict[bytes, bytes] = dict(self.schema.metadata or {})
        if self.metadata.get(KIND_KEY) in (b"series", b"record_batch"):
            what = "a Series" if self.metadata[KIND_KEY] == b"series" else "a RecordBatch"
            raise TypeError(f"object {name!r} is {what}: assign, drop and append change stored tables")
        pandas = self.metadata.get(b"pandas")
        self.pandas: dict[str, Any] | None = json.loads(pandas) if pandas is not None else None
        self.restores: dict[str, Any] = json.loads(self.metadata.get(PANDAS_DTYPES_KEY, b"{}"))

    def aligned(self, series: Any) -> Any:
        """``series`` lined up with the stored pandas frame's index, by
        position (its index reset) for the frame's rows."""
        if self._index is None:
            # The index only: no data column is read.
            self._index = _codecs.decode_pandas(self._obj, columns=[]).index
        if not series.index.equals(self._index):
            if series.index.has_duplicates:
                raise ValueError(
                    f"the Series for a new column has duplicate labels in its index, so it cannot be lined up "
                    f"with frame {self.name!r}'s index; give its values in the frame's row order "
                    "(series.to_numpy())"
                )
            if len(series) and len(self._index) and not series.index.isin(self._index).any():
                raise ValueError(
                    f"none of the labels of the Series for a new column is in frame {self.name!r}'s index, so "
                    "lined up with it (as DataFrame.assign does) every value would be missing; give its values "
                    "in the frame's row order (series.to_numpy()), or a Series indexed like the frame"
                )
            series = series.reindex(self._index)
        return series.reset_index(drop=True)

    def null_count(self, field: str) -> int:
        """Missing values in column ``field`` of the stored frame (Arrow
        keeps the counts: no pass over the values)."""
        return int(_codecs.read_arrow(self._obj).column(field).null_count)

    def index_fields(self) -> list[str]:
        if self.pandas is None:
            return []
        return [c for c in self.pandas.get("index_columns", []) if isinstance(c, str)]

    def data_fields(self) -> list[str]:
        index = set(self.index_fields())
        return [field.name for field in self.schema if field.name not in index]

    def with_pandas(self, pandas: dict[str, Any], restores: dict[str, Any]) -> dict[bytes, bytes]:
        metadata = dict(self.metadata)
        metadata[b"pandas"] = json.dumps(pandas).encode()
        if restores:
            metadata[PANDAS_DTYPES_KEY] = json.dumps(restores).encode()
        else:
            metadata.pop(PANDAS_DTYPES_KEY, None)
        return metadata


def _field(label: Any) -> str:
    return label if isinstance(label, str) else str(label)


# ------------------------------------------------------------ the changes


def assign(store: Any, namespace: str, name: str, columns: Mapping[str, Any]) -> None:
    """Adds or replaces ``columns`` of frame ``name`` (see ``Brain.assign``)."""
    if not columns:
        raise ValueError("assign needs at least one column: brain.assign(name, new_column=values)")
    with name_lock(store, namespace, name):
        stored = _Stored(store, namespace, name)
        metadata = None
        columns = _computed(store, namespace, name, stored, columns)
        # A scalar is one value for every row, as DataFrame.assign takes it.
        columns = {
            label: _every_row(value, stored.rows, stored.codec) if _is_scalar(value) else value
            for label, value in columns.items()
        }
        if stored.codec == "pandas":
            table, metadata = _pandas_columns(stored, columns)
        elif stored.codec == "polars":
            pl = _module("polars") or __import__("polars")
            new = pl.DataFrame(dict(columns))
            objects = [column for column, dtype in new.schema.items() if _codecs._polars_holds_objects(pl, dtype)]
            if objects:
                raise BrainUnsupportedObjectError(
                    f"column {objects[0]!r} holds Python objects (polars Object), which a frame stored as Arrow "
                    "cannot hold (they would be stored as memory addresses); give values of a polars type, or "
                    "store the whole frame (brain[name] = frame), which pickles what can be pickled"
                )
            table, _ = _codecs.polars_table(new)
        else:
            pa = _pa()
            try:
                table = pa.table({label: _native_order(value) for label, value in columns.items()})
            except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
                raise TypeError(
                    f"pyarrow cannot make columns of the values given ({err}); give arrays, lists of one type, "
                    "or pyarrow arrays"
                ) from err
        if table.num_rows != stored.rows:
            raise ValueError(
                f"the new columns have {table.num_rows} rows, frame {name!r} has {stored.rows}; "
                "give one value per row"
            )
        _publish(store, namespace, name, "assign", stored.codec, table, metadata)


def _is_scalar(value: Any) -> bool:
    """Whether ``value`` is one value (for every row), not a column of values."""
    if isinstance(value, Mapping):
        return False
    np = _module("numpy") or __import__("numpy")
    try:
        return bool(np.ndim(value) == 0)
    except ValueError:
        # Lists of different lengths (a column of lists): numpy makes no array of them.
        return False


def _every_row(value: Any, rows: int, codec: str) -> Any:
    """A column holding ``value`` in each of ``rows`` rows. With no rows, an
    empty column of the value's type (an empty list has none, and would be
    read as floats)."""
    if rows:
        return [value] * rows
    if codec == "pandas":
        pd = _module("pandas") or __import__("pandas")
        return pd.Series([value]).iloc[:0]
    if codec == "polars":
        pl = _module("polars") or __import__("polars")
        return pl.Series([value])[:0]
    return _pa().array([value])[:0]


def _computed(store: Any, namespace: str, name: str, stored: _Stored, columns: Mapping[str, Any]) -> dict[str, Any]:
    """``columns`` with those given as computations computed, as the frame's
    library computes them: a callable is called with the frame
    (``DataFrame.assign``'s rule), a polars expression is evaluated on it
    (``with_columns``', a single value given to every row). They go in
    order, each seeing the frame with the columns before it assigned. The
    stored frame is read zero-copy, once."""
    pl = _module("polars")

    def is_expression(value: Any) -> bool:
        return pl is not None and isinstance(value, pl.Expr)

    if not any(callable(value) or is_expression(value) for value in columns.values()):
        return dict(columns)
    frame = _codecs.decode(store.get(namespace, name))
    out: dict[Any, Any] = {}
    for label, value in columns.items():
        if is_expression(value):
            if not isinstance(frame, pl.DataFrame):
                raise TypeError(
                    f"column {label!r} is a polars expression, but frame {name!r} was written from "
                    f"{stored.codec}: give its values, or a function of the frame"
                )
            try:
                frame = frame.with_columns(value.alias(label))
            except pl.exceptions.PolarsError as err:
                raise ValueError(f"column {label!r}: polars cannot compute it on frame {name!r}: {err}") from err
            out[label] = frame.get_column(label)
            continue
        if callable(value):
            value = value(frame)
        out[label] = value
        frame = _with_column(frame, label, value)
    return out


def _with_column(frame: Any, label: Any, value: Any) -> Any:
    """``frame`` with ``value`` as its column ``label``, for the computations
    after it to see; as it is when the value does not make a column there
    (the assign itself then says why)."""
    pd, pl, pa = _module("pandas"), _module("polars"), _module("pyarrow")
    # One value for every row, as assign takes a scalar.
    scalar = _is_scalar(value)
    value = _native_order(value)
    try:
        if pd is not None and isinstance(frame, pd.DataFrame):
            frame = frame.copy(deep=False)
            # A Series lined up with the frame's index, as assign lines it up.
            frame[label] = value
        elif pl is not None and isinstance(frame, pl.DataFrame):
            if scalar:
                column = pl.lit(value).alias(label)
            else:
                column = value.alias(label) if isinstance(value, pl.Series) else pl.Series(label, value)
            frame = frame.with_columns(column)
        elif pa is not None and isinstance(frame, pa.Table):
            if isinstance(value, (pa.Array, pa.ChunkedArray)):
                column = value
            else:
                column = pa.array([value] * frame.num_rows if scalar else value)
            at = frame.schema.get_field_index(label)
            frame = frame.set_column(at, label, column) if at >= 0 else frame.append_column(label, column)
    except Exception:  # noqa: BLE001  (the assign reports a bad column itself)
        return frame
    return frame


def _pandas_columns(stored: _Stored, columns: Mapping[str, Any]) -> tuple[Any, dict[bytes, bytes]]:
    """The new columns as a table in pandas' form, and the frame's metadata
    with their pandas metadata and dtype restores merged in."""
    pa = _pa()
    pd = _module("pandas") or __import__("pandas")
    # A Series is lined up with the frame's index, as DataFrame.assign lines
    # it up (a label the Series lacks is missing in the new column); other
    # values are taken by position.
    values = {
        label: stored.aligned(value) if isinstance(value, pd.Series) else _native_order(value)
        for label, value in columns.items()
    }
    new = pd.DataFrame(values)
    had_columns = bool(stored.data_fields())
    _check_label_kind(pd, stored, new.columns, had_columns)
    def cannot(why: str) -> TypeError:
        return TypeError(
            f"a new column holds values Arrow cannot store exactly ({why}); store the whole frame "
            "instead (brain[name] = frame), which pickles what Arrow cannot hold"
        )

    try:
        table = _codecs.from_pandas_table(new)
    except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise cannot(str(err)) from err
    planned = _codecs._pandas_restores(pa, pd, new, table)
    if planned is None:
        raise cannot("lists or dicts, or values of mixed types, in an object column")
    table, new_restores, _ = planned
    pandas = stored.pandas
    assert pandas is not None
    entries = [entry for entry in pandas["columns"]]
    index = set(stored.index_fields())
    data = stored.data_fields()
    restores = dict(stored.restores)
    new_entries = table.schema.pandas_metadata["columns"]
    for j, field in enumerate(table.schema.names):
        entry = next(e for e in new_entries if e.get("field_name") == field)
        if field in data:
            position = data.index(field)
            at = next(i for i, e in enumerate(entries) if e.get("field_name") == field)
            entries[at] = entry
        else:
            position = len(data)
            data.append(field)
            at = next((i for i, e in enumerate(entries) if e.get("field_name") in index), len(entries))
            entries.insert(at, entry)
        restores.pop(f"c{position}", None)
        if f"c{j}" in new_restores:
            restores[f"c{position}"] = new_restores[f"c{j}"]
    # A frame without columns kept its empty RangeIndex of labels; it has labels
    # now, of the new columns' kind. A RangeIndex of labels stays one where
    # the new labels go on stepping evenly.
    if not had_columns:
        restores.pop("columns", None)
    pandas = dict(pandas, columns=entries)
    if not had_columns:
        pandas["column_indexes"] = table.schema.pandas_metadata.get("column_indexes", [])
    return _codecs._with_metadata(table, None), stored.with_pandas(pandas, restores)


def _native_order(value: Any) -> Any:
    """A numpy array of another byte order (``>i8``) in this machine's, which
    Arrow takes; anything else as it is."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(dtype, "byteorder", "=") not in ("=", "|") and hasattr(value, "astype"):
        return value.astype(dtype.newbyteorder("="))
    return value


# Kinds of column labels, by pandas' metadata name and ``infer_dtype``'s: labels
# of two kinds in one frame are mixed, which Arrow would turn into strings.
_LABEL_KINDS = {
    **dict.fromkeys(("unicode", "string", "str"), "str"),
    **dict.fromkeys(
        ("integer", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"), "int"
    ),
    **dict.fromkeys(("floating", "float16", "float32", "float64"), "float"),
    **dict.fromkeys(("datetime", "datetime64", "datetimetz"), "datetime"),
}


def _check_label_kind(pd: Any, stored: _Stored, labels: Any, had_columns: bool) -> None:
    """Refuses new columns whose labels would not be stored as they are: of
    mixed kinds among themselves, or of another kind than the frame's
    (``"z"`` beside ``3``, ``7``): pandas would mix them, and Arrow turn them
    into strings. A frame without columns takes the new ones' kind."""
    levels = (stored.pandas or {}).get("column_indexes") or []
    mixed = not _codecs._labels_survive_arrow(pd, labels)
    if not mixed and had_columns and len(levels) == 1 and not isinstance(labels, pd.MultiIndex):
        theirs = str(levels[0].get("pandas_type"))
        ours = pd.api.types.infer_dtype(labels, skipna=False)
        mixed = _LABEL_KINDS.get(theirs, theirs) != _LABEL_KINDS.get(ours, ours)
    if mixed:
        shown = ", ".join(repr(label) for label in list(labels)[:3])
        raise TypeError(
            f"the new column labels ({shown}) are not of the kind of the labels of frame {stored.name!r}: "
            "a frame's labels are all of one kind to be stored as they are; use labels of that kind, "
            "or store the whole frame (brain[name] = frame)"
        )


def drop(store: Any, namespace: str, name: str, columns: Sequence[Any]) -> None:
    """Drops ``columns`` from frame ``name`` (see ``Brain.drop``)."""
    columns = _codecs.column_list(columns)
    with name_lock(store, namespace, name):
        stored = _Stored(store, namespace, name)
        fields = [_field(column) for column in columns]
        data: list[Any] = stored.data_fields()
        missing = [column for column, field in zip(columns, fields) if field not in data]
        if missing:
            raise _codecs.column_not_exist(namespace, name, missing, data)
        metadata = None
        if stored.pandas is not None:
            kept = [field for field in data if field not in fields]
            restores = {k: v for k, v in stored.restores.items() if k[0] != "c" or k == "columns"}
            for position, field in enumerate(kept):
                how = stored.restores.get(f"c{data.index(field)}")
                if how is not None:
                    restores[f"c{position}"] = how
            entries = [e for e in stored.pandas["columns"] if e.get("field_name") not in fields]
            metadata = stored.with_pandas(dict(stored.pandas, columns=entries), restores)
        store.change_frame(namespace, name, "drop", stored.codec, columns=fields, metadata=metadata)


def append(store: Any, namespace: str, name: str, rows: Any) -> None:
    """Adds ``rows`` after frame ``name``'s (see ``Brain.append``)."""
    with name_lock(store, namespace, name):
        if not store.contains(namespace, name):
            # The first rows make the frame: a table, so that more rows can
            # follow (a RecordBatch or a Series would be stored as such).
            pa = _module("pyarrow")
            pd = _module("pandas")
            pl = _module("polars")
            if pa is not None and isinstance(rows, pa.RecordBatch):
                rows = pa.Table.from_batches([rows])
            tables = tuple(
                kind
                for kind in (
                    pa and pa.Table,
                    pd and pd.DataFrame,
                    pl and pl.DataFrame,
                )
                if kind is not None
            )
            if not isinstance(rows, tables):
                raise TypeError(
                    f"append takes a pandas or polars DataFrame, or a pyarrow Table or RecordBatch, "
                    f"not {_kind_of(rows)}; store other values with brain[name] = value"
                )
            _codecs.encode(store, namespace, name, rows, None, write_table)
            return
        joined = _joined_with_pickled_frame(store, namespace, name, rows)
        if joined is not None:
            _codecs.encode(store, namespace, name, joined, None, write_table)
            return
        stored = _Stored(store, namespace, name)
        metadata = None
        pa = _pa()
        pd = _module("pandas")
        pl = _module("polars")
        if stored.codec == "pandas":
            if pd is None or not isinstance(rows, pd.DataFrame):
                raise TypeError(f"frame {name!r} was written from pandas: append a pandas DataFrame, not {_kind_of(rows)}")
            table, metadata = _pandas_rows(stored, rows, _missing_markers(stored, rows))
        elif stored.codec == "polars":
            if pl is None or not isinstance(rows, pl.DataFrame):
                raise TypeError(f"frame {name!r} was written from polars: append a polars DataFrame, not {_kind_of(rows)}")
            table, _ = _codecs.polars_table(rows)
        else:
            if isinstance(rows, pa.RecordBatch):
                rows = pa.Table.from_batches([rows])
            if not isinstance(rows, pa.Table):
                raise TypeError(f"frame {name!r} was written from pyarrow: append a pyarrow Table, not {_kind_of(rows)}")
            table = rows
        table = _typed_as_stored(pa, table, stored.schema)
        _publish(store, namespace, name, "append", stored.codec, _codecs._with_metadata(table, None), metadata)


def _joined_with_pickled_frame(store: Any, namespace: str, name: str, rows: Any) -> Any:
    """The stored pandas frame and ``rows`` as one frame, when the stored
    one was pickled (a column Arrow cannot hold: dicts, mixed objects), so
    the rows can only be appended by writing the whole frame again; None
    for any other stored object. The index counts on as ``append``'s does."""
    pd = _module("pandas")
    if pd is None or not isinstance(rows, pd.DataFrame):
        return None
    obj = store.get(namespace, name, current=True)
    if obj is None or obj.codec != "pickle5":
        return None
    frame = _codecs.decode(obj)
    if not isinstance(frame, pd.DataFrame):
        return None
    if list(frame.columns) != list(rows.columns):
        raise BrainCodecError(
            f"cannot append to frame {name!r} in namespace {namespace!r}: rows to append must have the "
            f"frame's columns in order: the frame has {list(frame.columns)!r}, the rows {list(rows.columns)!r}"
        )
    counting = isinstance(frame.index, pd.RangeIndex) and isinstance(rows.index, pd.RangeIndex)
    return pd.concat([frame, rows], ignore_index=counting)


def _typed_as_stored(pa: Any, table: Any, schema: Any) -> Any:
    """``table`` with each column pyarrow typed as null (no rows, or only
    None in an object column) given the stored frame's type for it, as
    ``pd.concat`` keeps the frame's dtype: nothing else tells their type."""
    for at, field in enumerate(table.schema):
        if not pa.types.is_null(field.type) or schema.get_field_index(field.name) < 0:
            continue
        stored = schema.field(field.name)
        if not pa.types.is_null(stored.type):
            table = table.set_column(at, stored, pa.nulls(table.num_rows, stored.type))
    return table


def _uniform_rows(stored: _Stored, rows: Any) -> Any:
    """The rows of a frame whose columns all have one numpy dtype (a wide
    frame of floats), as the part to append, or None for any other frame.

    pyarrow's ``from_pandas`` spends about 150 µs a column in Python (pandas'
    column lookup, the metadata it builds), 25 ms for 165 columns: more
    than the copy itself. Here the frame's values come out as one 2-D array
    (a view of pandas' block when it has one), and each column is wrapped
    where it is, NaN made null as ``from_pandas`` does. The part needs no
    pandas metadata: the frame's stays in its manifest.
    """
    pa = _pa()
    np = _module("numpy")
    pd = _module("pandas")
    if np is None or pd is None or type(rows) is not pd.DataFrame:
        return None
    labels = rows.columns.tolist()
    if not all(type(label) is str for label in labels):
        labels = [_field(label) for label in labels]
    if labels != stored.data_fields() or stored.index_fields():
        return None
    dtypes = set(rows.dtypes)
    if len(dtypes) != 1:
        return None
    (dtype,) = dtypes
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiub":
        return None
    arrow_type = pa.from_numpy_dtype(dtype)
    if any(stored_type != arrow_type for stored_type in stored.schema.types):
        return None
    values = rows.to_numpy()
    if dtype.kind == "f":
        # A column without NaN is wrapped as it is; one with NaN gets nulls.
        has_nan = np.isnan(values.min(axis=0)) if len(values) else np.zeros(values.shape[1], dtype=bool)
    else:
        has_nan = np.zeros(values.shape[1], dtype=bool)
    arrays = [pa.array(values[:, i], from_pandas=bool(has_nan[i])) for i in range(values.shape[1])]
    return pa.Table.from_arrays(arrays, names=labels)


def _pandas_rows(stored: _Stored, rows: Any, restores: dict[str, Any]) -> tuple[Any, dict[bytes, bytes] | None]:
    pa = _pa()
    assert stored.pandas is not None
    index = stored.pandas.get("index_columns", [])
    ranged = len(index) == 1 and isinstance(index[0], dict) and index[0].get("kind") == "range"
    if ranged:
        # A RangeIndex goes on across the new rows, as pd.concat(..., ignore_index=True).
        table = _uniform_rows(stored, rows)
        if table is None:
            table = _codecs.from_pandas_table(rows.reset_index(drop=True))
        described = dict(index[0])
        described["stop"] = described["start"] + described["step"] * (stored.rows + table.num_rows)
        pandas = dict(stored.pandas, index_columns=[described], columns=_nullable_where_null(stored, table))
        return table, stored.with_pandas(pandas, restores)

    table = pa.Table.from_pandas(rows, preserve_index=True)
    pandas = dict(stored.pandas, columns=_nullable_where_null(stored, table))
    metadata = stored.with_pandas(pandas, restores)
    # A frequency the new dates may not keep is dropped.
    metadata.pop(_codecs.INDEX_FREQ_KEY, None)
    return table, metadata


def _stored_as_objects(stored: _Stored, field: str, how: Any) -> bool:
    """Whether the frame's column ``field`` (restored as ``how``) reads back
    as Python objects, the columns whose missing values have markers."""
    if how is not None:
        return _codecs._object_marker(how) is not None
    entry = next((e for e in (stored.pandas or {}).get("columns", []) if e.get("field_name") == field), None)
    return entry is not None and entry.get("numpy_type") == "object"


def _missing_markers(stored: _Stored, rows: Any) -> dict[str, Any]:
    """The frame's restores with the new rows' missing values: a column
    keeps one marker of missing values (``_codecs._missing_marker``), and
    every missing value reads back as it. A column with none missing yet
    takes the new rows' marker; new rows marked otherwise than the column
    (None where it has NaN) are refused."""
    pd = _module("pandas") or __import__("pandas")
    np = _module("numpy") or __import__("numpy")
    data = stored.data_fields()
    restores = dict(stored.restores)
    for j, dtype in enumerate(rows.dtypes):
        field = _field(rows.columns[j])
        values = rows.iloc[:, j]
        if dtype != np.dtype(object) or field not in data or not values.isna().any():
            continue
        key = f"c{data.index(field)}"
        how = restores.get(key)
        if not _stored_as_objects(stored, field, how):
            continue  # a column of numbers, dates or strings: its type decides (_typed_as_stored)
        theirs = _codecs._object_marker(how) or "None"
        ours = _codecs._missing_marker(pd, values)
        if ours == theirs:
            continue
        if ours is not None and theirs == "None" and stored.null_count(field) == 0:
            # Nothing missing so far: the column takes the new rows' marker.
            restores[key] = ["object", ours]
            continue
        shown = {"None": "None", "nan": "NaN", "NA": "pd.NA", "NaT": "NaT"}
        raise TypeError(
            f"the new rows' missing values in column {rows.columns[j]!r} are "
            f"{shown.get(ours or '', 'of mixed kinds')}, the frame's {shown[theirs]}: a column keeps one "
            "kind of missing value; mark them as the frame does (fillna), or store the whole frame "
            "(brain[name] = frame)"
        )
    return restores


# numpy's integer and bool dtypes, and pandas' nullable ones that hold the
# same values with missing ones beside them.
_NULLABLE = {
    **{f"int{bits}": f"Int{bits}" for bits in (8, 16, 32, 64)},
    **{f"uint{bits}": f"UInt{bits}" for bits in (8, 16, 32, 64)},
    "bool": "boolean",
}


def _nullable_where_null(stored: _Stored, rows: Any) -> list[dict[str, Any]]:
    """The frame's pandas metadata of columns, with the numpy integer or
    bool columns that the appended ``rows`` bring missing values into made
    pandas' nullable dtype (``Int64``, ``boolean``), as ``pd.concat`` makes
    them: read as numpy, they would turn into floats and objects, rounding
    integers past 2**53."""
    assert stored.pandas is not None
    columns: list[dict[str, Any]] = []
    for entry in stored.pandas["columns"]:
        nullable = _NULLABLE.get(entry.get("numpy_type", ""))
        field = entry.get("field_name")
        if (
            nullable is not None
            and field in rows.schema.names
            and rows.column(field).null_count
            and entry.get("metadata") is None
        ):
            entry = dict(entry, numpy_type=nullable)
        columns.append(entry)
    return columns


def compact(store: Any, namespace: str, name: str) -> bool:
    """Rewrites frame ``name`` as one part; False when it is stored whole already."""
    with name_lock(store, namespace, name):
        meta = store.metadata(namespace, name)
        if meta is None:
            raise BrainNameNotExistError(
                f"name {name!r} does not exist in namespace {namespace!r}; store a frame there first"
            )
        # A frame in parts shows its writer's codec; its manifest's own
        # (frame-parts) when that cannot be read, which compact reports.
        if meta["codec"] not in (*_codecs.LIBRARIES, "frame-parts"):
            raise _not_a_table(name, meta["codec"])
        return store.compact_frame(namespace, name) is not None


__all__ = ["append", "assign", "compact", "drop", "name_lock", "remember_lock", "write_table", "write_whole"]
