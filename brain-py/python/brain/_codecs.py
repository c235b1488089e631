"""How Python objects become bytes in the store, and back.

Every codec keeps reads zero-copy where the target library allows it:

- numpy arrays: the ``ndarray`` layout (dtype, shape, order, raw buffer);
  read back as a read-only array over the shared memory (numpy has no
  copy-on-write: copy it to change it).
- pyarrow Tables and RecordBatches, pandas and polars objects: an Arrow IPC
  file in the layout the writing library holds (polars' strings as
  ``string_view``), streamed into the store with one copy and read back
  with ``pyarrow.ipc`` over the shared memory, as the writer's kind of
  object or, on request, any other library's. A pandas frame read back
  copies a column on its first in-place change (``copy_on_write``).
- str: UTF-8 text; bytes: raw bytes.
- anything else: pickle protocol 5 with out-of-band buffers, so arrays
  inside dicts and lists stay zero-copy too.

Heavy libraries are imported only when an object of theirs is stored or read.
"""

from __future__ import annotations

import json
import pickle
import struct
import sys
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from . import _brain
from .exceptions import (
    BrainCodecError,
    BrainColumnNotExistError,
    BrainError,
    BrainUnpicklingError,
    BrainUnsupportedObjectError,
)

KIND_KEY = b"brain.kind"
SERIES_NAME_KEY = b"brain.series_name"
INDEX_FREQ_KEY = b"brain.index_freq"
# Columns (and index levels) whose pandas dtype Arrow's pandas metadata does
# not bring back, and how brain does: see _pandas_restores.
PANDAS_DTYPES_KEY = b"brain.pandas_dtypes"
# A message names at most this many of a table's columns.
COLUMNS_SHOWN = 20


def _module(name: str) -> Any:
    """The module if the program imported it; objects of it cannot exist otherwise."""
    return sys.modules.get(name)


# ---------------------------------------------------------------- numpy


def _json_to_descr(value: Any) -> Any:
    """NumPy's description of a dtype from its JSON form, where JSON has lists
    for NumPy's tuples: a type string, or a list of fields, each
    ``(name, type)`` or ``(name, type, shape)`` with ``name`` a string or
    ``(title, name)`` and ``type`` itself a description."""
    if not isinstance(value, list):
        return value
    fields = []
    for name, descr, *shape in value:
        field: tuple[Any, ...] = (tuple(name) if isinstance(name, list) else name, _json_to_descr(descr))
        if shape:
            dims = shape[0]
            field += (tuple(dims) if isinstance(dims, list) else dims,)
        fields.append(field)
    return fields


def _write_ndarray(store: Any, namespace: str, name: str, arr: Any, description: str | None) -> None:
    """Stores a numpy array from its own memory; brain-core lays it out (dtype, shape, order, data)."""
    np = _module("numpy")
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    descr = json.dumps(np.lib.format.dtype_to_descr(arr.dtype))
    # A flat uint8 view exports a plain buffer for every dtype (datetime64 does not).
    data = arr.ravel(order="K").view(np.uint8) if arr.size else b""
    store.put_ndarray(namespace, name, descr, list(arr.shape), bool(fortran), data, description)


def decode_ndarray(obj: Any) -> Any:
    """A read-only numpy array over an ndarray object's memory."""
    np = _module("numpy") or __import__("numpy")
    descr, shape, fortran, data = obj.ndarray()
    dtype = np.lib.format.descr_to_dtype(_json_to_descr(json.loads(descr)))
    count = 1
    for n in shape:
        count *= n
    if count and dtype.itemsize:
        arr = np.frombuffer(data, dtype=dtype, count=count)
    else:
        arr = np.empty(0 if not count else count, dtype)
        arr.flags.writeable = False  # read-only like every array read from the store
    return arr.reshape(tuple(shape), order="F" if fortran else "C")


# ---------------------------------------------------------------- arrow


def _write_ipc(pa: Any, sink: Any, table: Any) -> None:
    """Writes a Table or RecordBatch to ``sink`` as an Arrow IPC file."""
    if isinstance(table, pa.Table):
        table = _one_dictionary_a_column(pa, table)
    with pa.ipc.new_file(sink, table.schema) as ipc:
        if isinstance(table, pa.RecordBatch):
            ipc.write_batch(table)
        elif table.num_rows == 0 and any(pa.types.is_dictionary(t) for t in table.schema.types):
            # pyarrow writes no batch for no rows, and so no dictionary: a
            # categorical's categories would be lost. One empty batch keeps them.
            empty = [column.chunk(0) if column.num_chunks else pa.array([], column.type) for column in table.columns]
            ipc.write_batch(pa.RecordBatch.from_arrays(empty, schema=table.schema))
        else:
            ipc.write_table(table)


def _one_dictionary_a_column(pa: Any, table: Any) -> Any:
    """``table`` with each dictionary column's chunks sharing one dictionary.

    An Arrow IPC file has one dictionary a column, and pyarrow refuses chunks
    with others (``pa.concat_tables`` of categoricals, a Parquet file read
    with ``read_dictionary``, ``pd.concat`` of dictionary columns):
    ``unify_dictionaries`` merges them and maps each chunk's indices onto the
    merged dictionary.
    """
    schema = table.schema
    # This runs twice a write (the length, then the bytes): one look at the
    # schema's text rules out most tables without a call per column.
    if "dictionary<" not in schema.to_string(show_field_metadata=False, show_schema_metadata=False):
        return table
    for i in range(len(schema)):
        if not pa.types.is_dictionary(schema.field(i).type):
            continue
        column = table.column(i)
        if column.num_chunks > 1:
            dictionaries = [chunk.dictionary for chunk in column.chunks]
            if any(not d.equals(dictionaries[0]) for d in dictionaries[1:]):
                return table.unify_dictionaries()
    return table


class _Gathered:
    """A file for pyarrow's IPC writer that hands what it is given to a store
    writer a few at a time, as one ``writelines`` call per group.

    pyarrow writes a table buffer by buffer: a wide frame is hundreds of
    column buffers, and one ``write`` each copies them one by one on one
    core. Kept together (the table's buffers and pyarrow's small pieces of
    metadata, referenced, not copied), the store copies them as one copy
    split across cores. A group is handed over once it holds
    ``_GATHER_BYTES``, so what pyarrow makes for the write alone (buffers
    it rebases) is kept at most that long.
    """

    closed = False

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self._pieces: list[Any] = []
        self._held = 0
        self._written = 0

    def write(self, data: Any) -> int:
        n = len(data)
        self._pieces.append(data)
        self._held += n
        self._written += n
        if self._held >= _GATHER_BYTES:
            self.flush()
        return n

    def flush(self) -> None:
        if self._pieces:
            self._writer.writelines(self._pieces)
            self._pieces, self._held = [], 0

    def tell(self) -> int:
        return self._written

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.flush()


_GATHER_BYTES = 64 << 20


def stream_ipc(pa: Any, writer: Any, table: Any) -> None:
    """Writes a Table or RecordBatch into a store writer as an Arrow IPC
    file, its buffers copied in groups (see ``_Gathered``)."""
    sink = _Gathered(writer)
    _write_ipc(pa, sink, table)
    sink.flush()


def ipc_file_len(table: Any) -> int:
    """The exact length of the Arrow IPC file brain writes for a Table or RecordBatch.

    The file is written once to a stream that only counts bytes: no data is
    copied, so this costs microseconds per record batch whatever its size.
    """
    pa = _module("pyarrow") or __import__("pyarrow")
    import pyarrow.ipc  # noqa: F401  (the submodule is not loaded by `import pyarrow`)

    sink = pa.MockOutputStream()
    _write_ipc(pa, sink, table)
    return int(sink.size())


def _write_arrow(
    store: Any,
    namespace: str,
    name: str,
    codec: str,
    table: Any,
    description: str | None,
    expected_len: int | None = None,
) -> None:
    """Streams ``table`` into the store as an Arrow IPC file.

    The file's length is computed first (unless the caller did) and given to
    the writer, so the store reserves capacity and allocates the file in one step.
    """
    pa = _module("pyarrow") or __import__("pyarrow")
    import pyarrow.ipc  # noqa: F401  (the submodule is not loaded by `import pyarrow`)

    if expected_len is None:
        expected_len = ipc_file_len(table)
    writer = store.writer(namespace, name, codec, description, expected_len)
    try:
        stream_ipc(pa, writer, table)
        written = writer.tell()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if written != expected_len:
        # The object is stored and correct (the store grows or trims the
        # file); only the up-front allocation was wrong.
        warnings.warn(
            f"brain: the Arrow IPC file of {name!r} is {written} bytes, {expected_len} were computed",
            RuntimeWarning,
            stacklevel=3,
        )


def _with_kind(schema_or_table: Any, kind: bytes, extra: dict[bytes, bytes] | None = None) -> Any:
    metadata = dict(schema_or_table.schema.metadata or {})
    metadata[KIND_KEY] = kind
    metadata.update(extra or {})
    return _with_metadata(schema_or_table, metadata)


def _with_metadata(table: Any, metadata: dict[bytes, bytes] | None) -> Any:
    """``table.replace_schema_metadata(metadata)``, keeping the row count of a
    table without columns (pyarrow's makes it 0 rows)."""
    if table.num_columns or not table.num_rows:
        return table.replace_schema_metadata(metadata)
    pa = _module("pyarrow") or __import__("pyarrow")
    if isinstance(table, pa.RecordBatch):
        return table.replace_schema_metadata(metadata)
    rows = pa.RecordBatch.from_struct_array(pa.nulls(table.num_rows, pa.struct([])))
    return pa.Table.from_batches([rows.replace_schema_metadata(metadata)])


# The schemas of Arrow files read before, keyed by the bytes of the schema
# message (the same bytes on every read of an object, and of other objects
# written with the same columns): parsing a schema with pandas' metadata is
# about a third of opening the file. Each is kept with and without brain's
# metadata, with brain's kind of table, or is False for a file the whole
# reader must read.
_SCHEMAS: dict[bytes, Any] = {}
_SCHEMAS_KEPT = 256
_ARROW_MAGIC = b"ARROW1"
_CONTINUATION_MARKER = 0xFFFFFFFF
# The file's magic, padded to the writer's alignment before the first
# message: 8 bytes by pyarrow, 64 by arrow-rs (tables written from Rust).
_FILE_MAGIC = struct.Struct("<6s")
_MAGIC_PADDED_MOST = 64
# Each message starts with a continuation marker and its metadata's length.
# (Read with struct: comparing a pyarrow buffer's memoryview, of format
# "b", with bytes goes element by element, microseconds a comparison.)
_MESSAGE_HEAD = struct.Struct("<II")


def _drop_oldest(cache: dict[Any, Any]) -> None:
    """Drops a cache's oldest entry (another thread may have dropped it first)."""
    for key in list(cache)[:1]:
        cache.pop(key, None)


def _pyarrow_ipc() -> Any:
    """pyarrow, with its IPC module loaded (``import`` on each read costs more)."""
    pa = sys.modules.get("pyarrow")
    if pa is None or "pyarrow.ipc" not in sys.modules:
        import pyarrow.ipc

        pa = sys.modules["pyarrow"]
    return pa


def _read_known_schema(pa: Any, buffer: Any, stripped: bool = False) -> Any:
    """The record batches of an Arrow IPC file, decoded against a schema
    parsed on an earlier read (without brain's metadata when ``stripped``),
    and that schema (``(schema, schema without brain's metadata, brain's
    kind)``); None when this file's schema is new to this process (it is
    kept for the next read), or the file is not laid out as brain writes it
    (its schema message first, then only record batches: dictionaries need
    the whole reader)."""
    view = memoryview(buffer)
    size = len(view)
    if size < 16 or _FILE_MAGIC.unpack_from(view)[0] != _ARROW_MAGIC:
        return None
    start = 8
    marker, schema_len = _MESSAGE_HEAD.unpack_from(view, start)
    while marker == 0 and schema_len == 0 and start < _MAGIC_PADDED_MOST and start + 16 <= size:
        start += 8
        marker, schema_len = _MESSAGE_HEAD.unpack_from(view, start)
    if marker != _CONTINUATION_MARKER:
        return None
    end = start + 8 + schema_len
    if end > size:
        return None
    key = view[start + 8 : end].tobytes()
    schema = _SCHEMAS.get(key)
    if schema is None:
        try:
            message = pa.ipc.read_message(buffer.slice(start))
            if message.type != "schema":
                return None
            read = pa.ipc.read_schema(message)
        except (pa.ArrowException, OSError, ValueError):
            return None  # a damaged file: the whole reader says what is wrong with it
        plan: Any = False
        # An extension type reads as its storage type until it is
        # registered, which may happen later: such files are read whole.
        if not any(_has_dictionary(pa, field.type) or _has_extension(field) for field in read):
            metadata = _without_brain_keys(read.metadata)
            as_users_see_it = read.with_metadata(metadata) if metadata else read.remove_metadata()
            plan = (read, as_users_see_it, (read.metadata or {}).get(KIND_KEY))
        if len(_SCHEMAS) >= _SCHEMAS_KEPT:
            _drop_oldest(_SCHEMAS)
        _SCHEMAS[key] = plan
        return None
    if schema is False:
        return None
    plan, schema = schema, schema[1] if stripped else schema[0]
    # Each message: the continuation marker, its metadata's length, the
    # metadata, then its body; the stream ends with a marker and a length
    # of 0, before the file's footer.
    batches = []
    at = end
    try:
        while True:
            if at + 8 > size:
                return None
            marker, metadata_len = _MESSAGE_HEAD.unpack_from(view, at)
            if marker != _CONTINUATION_MARKER:
                return None
            if metadata_len == 0:
                break
            message = pa.ipc.read_message(buffer.slice(at))
            if message.type != "record batch":
                return None
            batches.append(pa.ipc.read_record_batch(message, schema))
            at += 8 + metadata_len + message.body.size
    except (pa.ArrowException, OSError, ValueError):
        return None  # a damaged file: the whole reader says what is wrong with it
    return batches, plan


def _has_extension(field: Any) -> bool:
    """Whether a field or any field inside it carries an extension type's name."""
    if b"ARROW:extension:name" in (field.metadata or {}) or hasattr(field.type, "extension_name"):
        return True
    return any(_has_extension(field.type.field(i)) for i in range(field.type.num_fields))


def _has_dictionary(pa: Any, arrow_type: Any) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return True
    return any(_has_dictionary(pa, arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def read_arrow(obj: Any, columns: Sequence[Any] | None = None, picked: Any = None) -> Any:
    """The pyarrow Table in a payload, its columns pointing into the store.

    ``columns`` names the columns to read, in that order (pandas' labels for a
    frame written from pandas, whose index columns come along); the others
    are not decoded, so the cost follows the columns asked for, not the
    table's width. ``picked`` is what ``_brain.table_columns`` returned for
    them, when the caller has it already.
    """
    pa = _pyarrow_ipc()
    if columns is None:
        try:
            if isinstance(obj, _brain.Frame):
                return _frame_table(pa, obj)
            buffer = pa.py_buffer(obj)
            known = _read_known_schema(pa, buffer)
            if known is not None:
                batches, (schema, _, _) = known
                return pa.Table.from_batches(batches, schema=None if batches else schema)
            return pa.ipc.open_file(buffer).read_all()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            # Bytes that are no table this pyarrow reads (its footer's check
            # fails as an OSError); not running out of memory.
            raise BrainCodecError(
                f"object {obj.name!r} in namespace {obj.namespace!r} is stored as a table ({obj.codec}), but its "
                f"payload is not one this pyarrow can read ({type(err).__name__}: {err}): it was damaged, "
                "written as something else than an Arrow IPC file (`brain put -c arrow` takes a file, not a "
                "stream), or holds a type this pyarrow lacks; delete it or write it again, or upgrade pyarrow"
            ) from err
    # brain decodes only the fields picked and hands them to pyarrow through
    # the Arrow C stream interface, zero-copy (pyarrow's own reader copies a
    # subset of fields). pyarrow names a column by its pandas label as a
    # string (7 is "7").
    fields = _field_names(columns)
    if picked is None:
        picked = _brain.table_columns(obj, fields)
    picked, existing, metadata, missing, positions = picked
    if metadata.get(KIND_KEY) == b"series":
        raise TypeError(
            f"object {obj.name!r} is a Series: columns= picks columns of a stored table; read it without columns="
        )
    if picked is None:
        raise column_not_exist(
            obj.namespace, obj.name, [column for column, field in zip(columns, fields) if field in missing], existing
        )
    restoring = metadata.get(PANDAS_DTYPES_KEY)
    if restoring is not None:
        # brain's restores name a column by its position: move them with it.
        restores = json.loads(restoring)
        moved = {key: how for key, how in restores.items() if key[0] == "i" or key == "columns"}
        for new, old in enumerate(positions):
            how = restores.get(f"c{old}")
            if how is not None:
                moved[f"c{new}"] = how
        metadata[PANDAS_DTYPES_KEY] = json.dumps(moved).encode()
    table = pa.table(picked)
    if not table.num_columns:
        # No column picked (and no index column to bring): the rows still count.
        table = read_arrow(obj).select([])
    return _with_metadata(table, metadata)


# The schemas of frames in parts, by the bytes of the manifest's schema.
_FRAME_SCHEMAS: dict[bytes, Any] = {}


def frame_schema(pa: Any, frame: Any) -> Any:
    """The schema (with its metadata) of a frame stored in parts, parsed
    once per process."""
    raw = frame.schema_ipc()
    schema = _FRAME_SCHEMAS.get(raw)
    if schema is None:
        schema = pa.ipc.open_file(pa.py_buffer(raw)).schema
        if len(_FRAME_SCHEMAS) >= _SCHEMAS_KEPT:
            _drop_oldest(_FRAME_SCHEMAS)
        _FRAME_SCHEMAS[raw] = schema
    return schema


def _frame_table(pa: Any, frame: Any) -> Any:
    """The whole table of a frame stored in parts: each part read as any
    stored table is (zero-copy, its schema parsed once), and each column
    made of its parts' chunks, in row order."""
    if frame.whole:
        whole = read_arrow(frame.parts()[0])
        if whole.num_columns == len(frame.columns()):
            return whole
    schema = frame_schema(pa, frame)
    parts = frame.parts()
    columns = frame.columns()
    tables: dict[int, Any] = {}
    arrays = []
    for position, chunks in enumerate(columns):
        pieces = []
        for part, field, _ in chunks:
            table = tables.get(part)
            if table is None:
                table = tables[part] = read_arrow(parts[part])
            pieces.extend(table.column(field).chunks)
        arrays.append(pa.chunked_array(pieces, type=schema.field(position).type))
    if not arrays:
        rows = pa.RecordBatch.from_struct_array(pa.nulls(frame.rows, pa.struct([])))
        return _with_metadata(pa.Table.from_batches([rows]), schema.metadata)
    return pa.Table.from_arrays(arrays, schema=schema)


def column_not_exist(namespace: str, name: str, missing: list[Any], existing: list[Any]) -> BrainColumnNotExistError:
    """The error for columns ``missing`` of the table ``name``, naming its columns."""
    shown = ", ".join(repr(column) for column in existing[:COLUMNS_SHOWN]) or "none"
    if len(existing) > COLUMNS_SHOWN:
        shown += f", and {len(existing) - COLUMNS_SHOWN} more"
    err = BrainColumnNotExistError(
        f"table {name!r} in namespace {namespace!r} has no column "
        f"{', '.join(repr(column) for column in missing)}; its columns are {shown}"
    )
    err.namespace, err.name, err.missing, err.columns = namespace, name, missing, list(existing)
    return err


def _without_brain_keys(metadata: dict[bytes, bytes] | None) -> dict[bytes, bytes]:
    """A schema's metadata without brain's own keys, as users see it."""
    return {k: v for k, v in (metadata or {}).items() if not k.startswith(b"brain.")}


def _strip_brain_metadata(table: Any) -> Any:
    return _with_metadata(table, _without_brain_keys(table.schema.metadata) or None)


def _read_arrow_stripped(obj: Any, columns: Sequence[Any] | None) -> tuple[Any, dict[bytes, bytes]]:
    """``read_arrow`` without brain's metadata, as users see a table, and
    the metadata it had (brain's kind of table, a Series' name)."""
    if columns is None and isinstance(obj, _brain.Frame) and obj.whole:
        # The whole frame, read as any stored table.
        table, metadata = _read_arrow_stripped(obj.parts()[0], None)
        if table.num_columns == len(obj.columns()):
            return table, metadata
    if columns is None and not isinstance(obj, _brain.Frame):
        pa = _pyarrow_ipc()
        known = _read_known_schema(pa, pa.py_buffer(obj), stripped=True)
        if known is not None:
            batches, (schema, stripped, _) = known
            # The batches have the schema already: checking it again costs more.
            table = pa.Table.from_batches(batches, schema=None if batches else stripped)
            return table, schema.metadata or {}
    table = read_arrow(obj, columns)
    return _strip_brain_metadata(table), table.schema.metadata or {}


def _user_table(obj: Any, columns: Sequence[Any] | None) -> Any:
    """The stored table as ``as_arrow=True`` gives it: without brain's
    metadata, and a pandas Series' one column named as the Series (as
    pyarrow names the column of ``series.to_frame()``), not by the name
    brain stores it under."""
    table, metadata = _read_arrow_stripped(obj, columns)
    if metadata.get(KIND_KEY) == b"series" and SERIES_NAME_KEY in metadata and table.num_columns == 1:
        name = json.loads(metadata[SERIES_NAME_KEY])
        table = table.rename_columns(["0" if name is None else str(name)])
    return table


def decode_arrow(obj: Any, columns: Sequence[Any] | None = None) -> Any:
    table, metadata = _read_arrow_stripped(obj, columns)
    if metadata.get(KIND_KEY) == b"record_batch":
        batches = table.to_batches()
        if len(batches) == 1:
            return batches[0]
        return table.combine_chunks().to_batches()[0]
    return table


def decode_pandas(obj: Any, as_arrow: bool = False, columns: Sequence[Any] | None = None) -> Any:
    """A frame written from pandas, as the frame (or Series) it was."""
    if as_arrow:
        return _user_table(obj, columns)
    picked = None
    if columns is not None and _builds_frames_from_blocks():
        # One pick and decode serves both ways of making the frame.
        numbers, picked = _brain.numeric_columns(obj, _field_names(columns))
        frame = _numeric_frame(numbers, picked[2]) if numbers is not None else None
        if frame is not None:
            return frame
    return _pandas_from_pandas_table(read_arrow(obj, columns, picked))


def _field_names(columns: Sequence[Any]) -> list[str]:
    """The Arrow field names of pandas' column labels (pyarrow names 7 "7").

    A column named twice is refused: a table read back with two columns of
    one name would be ambiguous to every library that reads it."""
    fields = [column if isinstance(column, str) else str(column) for column in columns]
    for field in fields:
        if not _is_utf8(field):
            raise ValueError(
                f"columns= names {field!r}, which holds a lone surrogate: no column can have that name "
                "(column names are UTF-8)"
            )
    if len(set(fields)) != len(fields):
        seen: set[str] = set()
        for column, field in zip(columns, fields):
            if field in seen:
                raise ValueError(f"columns= names {column!r} more than once; name each column once")
            seen.add(field)
    return fields


def _builds_frames_from_blocks() -> bool:
    """Whether this pandas builds a frame from blocks through its API (pandas 3)."""
    pd = _module("pandas")
    internals = getattr(getattr(pd, "api", None), "internals", None)
    return hasattr(internals, "create_dataframe_from_blocks") and _module("numpy") is not None


def _pandas_from_pandas_table(table: Any) -> Any:
    metadata = table.schema.metadata or {}
    restoring = metadata.get(PANDAS_DTYPES_KEY)
    restores = json.loads(restoring) if restoring is not None else {}
    frame = None if set(restores) - {"columns"} else _plain_frame(table, metadata.get(b"pandas"))
    if frame is None:
        frame = (_without_arrow_columns(table, restores) if restores else table).to_pandas(split_blocks=True)
    for key, how in restores.items():
        if key == "columns":
            frame.columns = _range_of_labels(frame.columns)
        else:
            _restore_pandas_dtype(frame, table, key, how)
    freq = metadata.get(INDEX_FREQ_KEY)
    if freq is not None:
        frame.index = type(frame.index)(frame.index, freq=freq.decode())
    copy_on_write(frame)
    if metadata.get(KIND_KEY) == b"series":
        series = frame.iloc[:, 0]
        series.name = json.loads(metadata[SERIES_NAME_KEY])
        return series
    return frame


# How each column of a frame of only numbers and strings becomes pandas,
# keyed by the table's pandas metadata (the same bytes on every read of an
# object), the columns read and pandas' `mode.string_storage` (which makes
# `str` labels and columns pyarrow-backed, and can change): the labels'
# Index, the index's range and each column's dtype, or False for a table
# that is not plain.
_PLAIN_PLANS: dict[tuple[bytes, tuple[str, ...], Any], Any] = {}
_PLAIN_PLANS_KEPT = 64
# Arrow types whose values pandas holds in a numpy array of the same bytes.
_NUMPY_NUMBERS = frozenset(
    ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double")
)
_NUMPY_NAMES = {"float": "float32", "double": "float64"}


def _plain_plan(table: Any, pandas_metadata: bytes) -> Any:
    """How ``_plain_frame`` builds a frame of ``table``, or False when the
    table is not plain: a range index, string or integer labels of one level, no
    attributes, and every column numbers pandas keeps as numpy or strings
    pandas keeps as ``str``, as pyarrow's ``to_pandas`` would make them."""
    pd = _module("pandas") or __import__("pandas")
    if not hasattr(pd.api, "internals") or not hasattr(pd.api.internals, "create_dataframe_from_blocks"):
        return False
    meta = json.loads(pandas_metadata)
    index_columns = meta.get("index_columns")
    levels = meta.get("column_indexes")
    columns = meta.get("columns")
    if (
        not isinstance(index_columns, list)
        or len(index_columns) != 1
        or not isinstance(index_columns[0], dict)
        or index_columns[0].get("kind") != "range"
        or levels is None
        or len(levels) != 1
        or levels[0].get("name") is not None
        or (levels[0].get("pandas_type"), levels[0].get("numpy_type")) not in (("unicode", "str"), ("int64", "int64"))
        or meta.get("attributes")
        or not isinstance(columns, list)
        or not all(isinstance(column, dict) for column in columns)
    ):
        return False
    string = pd.api.types.pandas_dtype("str")
    if getattr(string, "storage", None) != "pyarrow":
        return False
    if len(columns) != table.num_columns:
        # Some columns were picked: each is found by its name, which must be unique.
        by_name = {column.get("field_name"): column for column in columns}
        if len(by_name) != len(columns) or not all(field.name in by_name for field in table.schema):
            return False
        columns = [by_name[field.name] for field in table.schema]
    kinds: list[Any] = []
    for field, column in zip(table.schema, columns):
        if column.get("name") != field.name or column.get("field_name") != field.name:
            return False
        arrow_type = str(field.type)
        if arrow_type in _NUMPY_NUMBERS and column.get("numpy_type") == _NUMPY_NAMES.get(arrow_type, arrow_type):
            kinds.append(None)
        elif arrow_type in ("string", "large_string") and column.get("numpy_type") == "str":
            kinds.append(string)
        else:
            return False
    index = index_columns[0]
    np = _module("numpy") or __import__("numpy")
    names = [column["name"] for column in columns]
    if levels[0].get("pandas_type") == "int64":
        # Integer labels (a RangeIndex of them, restored by the caller), which
        # the metadata names as text.
        try:
            labels = pd.Index([int(name) for name in names], dtype="int64")
        except (TypeError, ValueError):
            return False
        if [str(label) for label in labels] != names:
            return False
    else:
        labels = pd.Index(names, dtype="str")
    return (
        labels,
        range(index["start"], index["stop"], index["step"]),
        index["name"],
        # Each column's Arrow type, checked on every read: another table may
        # carry the same pandas metadata over other types (set_column, cast).
        [(kind, np.array([at]), field.type) for at, (kind, field) in enumerate(zip(kinds, table.schema))],
    )


def _kept_plan(plans: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """``plans[key]``, made by ``make()`` and kept when missing (the oldest
    plan dropped when there are too many)."""
    plan = plans.get(key)
    if plan is None:
        plan = make()
        if len(plans) >= _PLAIN_PLANS_KEPT:
            _drop_oldest(plans)
        plans[key] = plan
    return plan


def _plain_frame(table: Any, pandas_metadata: bytes | None) -> Any:
    """The frame pyarrow's ``to_pandas(split_blocks=True)`` makes of a
    table of numbers and strings with a range index, built directly: the
    same columns, zero-copy, without the general conversion's cost (about
    150 µs of the 400 of a frame of 8 columns). None for any other table."""
    if pandas_metadata is None:
        return None
    pd = _module("pandas") or __import__("pandas")
    key = (pandas_metadata, tuple(table.schema.names), pd.get_option("mode.string_storage"))
    plan = _kept_plan(_PLAIN_PLANS, key, lambda: _plain_plan(table, pandas_metadata))
    if plan is False:
        return None
    labels, rows, name, kinds = plan
    if len(rows) != table.num_rows:
        # Rows were taken or added since pandas wrote the metadata (a slice,
        # a filter, a concatenation): to_pandas then numbers them from 0.
        return None
    pa_types = sys.modules["pyarrow"].types
    blocks = []
    for column, (kind, placement, arrow_type) in zip(table.columns, kinds):
        if column.type != arrow_type:
            return None
        if kind is None:
            if column.num_chunks != 1:
                return None
            if column.null_count:
                # pandas has no null in a numpy column: floats get NaN (a
                # copy, as to_pandas makes), integers would become floats.
                if not pa_types.is_floating(column.type):
                    return None
                blocks.append((column.chunk(0).to_numpy(zero_copy_only=False).reshape(1, -1), placement))
                continue
            blocks.append((column.chunk(0).to_numpy().reshape(1, -1), placement))
        else:
            blocks.append((kind.__from_arrow__(column), placement))
    index = pd.RangeIndex(rows.start, rows.stop, rows.step, name=name)
    # A view: the plan's labels are kept, and a name set on the frame's
    # columns (in place, `df.columns.name = ...`) must not reach later reads.
    return pd.api.internals.create_dataframe_from_blocks(blocks, index=index, columns=labels.view())


class _Field:
    """A column's name and Arrow type's name, as ``_plain_plan`` reads a field."""

    __slots__ = ("name", "type")

    def __init__(self, name: str, arrow_type: str) -> None:
        self.name, self.type = name, arrow_type


class _Shape:
    """The fields of columns read without a pyarrow table, as ``_plain_plan`` reads a table."""

    def __init__(self, names: Sequence[str], types: Sequence[str]) -> None:
        self.schema = [_Field(name, arrow_type) for name, arrow_type in zip(names, types)]
        self.num_columns = len(self.schema)


# The plans of ``_numeric_frame``, by pandas' metadata of the columns read,
# their names and their Arrow types, and `mode.string_storage`.
_NUMERIC_PLANS: dict[tuple[bytes, tuple[str, ...], tuple[str, ...], Any], Any] = {}


def _numeric_frame(numbers: Any, metadata: dict[bytes, bytes]) -> Any:
    """Some columns of a frame written from pandas, read as pandas straight
    from the store's memory when each is numbers without nulls in one piece
    (``numbers``, from ``_brain.numeric_columns``, with the picked columns'
    schema ``metadata``) and the frame is plain
    (``_plain_plan``: a range index, labels of one level, ``str`` backed by
    pyarrow, no dtype brain restores): each column is a numpy array over the
    stored values, with no pyarrow table in between (its import, metadata
    and conversion cost more than the rest of a read of two columns of a
    wide frame). The frame is the one ``_plain_frame`` builds through
    pyarrow. None for any other read."""
    np = _module("numpy")
    pd = _module("pandas")
    assert np is not None and pd is not None
    views, names, types = numbers
    pandas = metadata.get(b"pandas")
    if (
        not views
        or pandas is None
        or PANDAS_DTYPES_KEY in metadata
        or INDEX_FREQ_KEY in metadata
        or metadata.get(KIND_KEY) == b"series"
    ):
        return None
    key = (pandas, tuple(names), tuple(types), pd.get_option("mode.string_storage"))
    plan = _kept_plan(_NUMERIC_PLANS, key, lambda: _plain_plan(_Shape(names, types), pandas))
    if plan is False:
        return None
    labels, rows, name, kinds = plan
    blocks = []
    for view, arrow_type, (kind, placement, _) in zip(views, types, kinds):
        values = np.frombuffer(view, dtype=_NUMPY_NAMES.get(arrow_type, arrow_type))
        if kind is not None or len(values) != len(rows):
            # Rows taken or added since pandas wrote the metadata: to_pandas numbers them from 0.
            return None
        blocks.append((values.reshape(1, -1), placement))
    index = pd.RangeIndex(rows.start, rows.stop, rows.step, name=name)
    # A view of the kept labels, as in _plain_frame.
    return copy_on_write(pd.api.internals.create_dataframe_from_blocks(blocks, index=index, columns=labels.view()))


def decode_polars(obj: Any, as_arrow: bool = False, columns: Sequence[Any] | None = None) -> Any:
    """A frame written from polars, as the DataFrame (or Series) it was."""
    if as_arrow:
        return _read_arrow_stripped(obj, columns)[0]
    return _polars_from_table(read_arrow(obj, columns))


def _has_view(pa: Any, arrow_type: Any) -> bool:
    if pa.types.is_string_view(arrow_type) or pa.types.is_binary_view(arrow_type):
        return True
    if pa.types.is_dictionary(arrow_type):
        return _has_view(pa, arrow_type.value_type)
    return any(_has_view(pa, arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _polars_holds_objects(pl: Any, dtype: Any) -> bool:
    """Whether a polars dtype is or holds ``Object``, which Arrow would store as
    8-byte pointers: such a frame takes the pickle path, which refuses it."""
    if dtype == pl.Object:
        return True
    if isinstance(dtype, pl.Struct):
        return any(_polars_holds_objects(pl, field.dtype) for field in dtype.fields)
    inner = getattr(dtype, "inner", None)
    return inner is not None and _polars_holds_objects(pl, inner)


def polars_table(thing: Any, kind: bytes = b"frame") -> tuple[Any, int]:
    """The Arrow table brain stores for a polars DataFrame or Series (``kind``), and its IPC file's length.

    Strings and binary stay in polars' own layout, Arrow's ``string_view``
    and ``binary_view`` (``CompatLevel.newest()``): exporting them costs
    nothing, and polars reads them back without a conversion. The older
    ``large_string`` layout costs a conversion each way (80 ms each for the
    10-million-row frame of the benchmarks, against 0.1 ms).

    A view column shares its data buffers with the frame it was sliced or
    filtered from, and Arrow IPC writes buffers whole, so five rows of a
    big frame would store all its strings. When the file would be more than
    twice the frame's own size (polars' ``estimated_size``, plus 16 bytes a
    view), the columns are rebuilt through ``large_string``, which copies
    only the strings the rows use.
    """
    import pyarrow as pa
    import polars as pl

    frame = thing.to_frame() if isinstance(thing, pl.Series) else thing
    compat = getattr(pl, "CompatLevel", None)
    table = _with_kind(frame.to_arrow(compat_level=compat.newest()) if compat is not None else frame.to_arrow(), kind)
    length = ipc_file_len(table)
    views = [field for field in table.schema if _has_view(pa, field.type)]
    if not views or not _has_view_data(pa, table):
        return table, length
    own = frame.estimated_size() + 16 * frame.height * len(views)
    if length <= 2 * own + (1 << 20):
        return table, length
    compact = pl.from_arrow(frame.to_arrow(), rechunk=False)
    table = _with_kind(compact.to_arrow(compat_level=compat.newest()) if compat is not None else compact.to_arrow(), kind)
    return table, ipc_file_len(table)


def _has_view_data(pa: Any, table: Any) -> bool:
    """Whether a view column keeps any string outside its views (in a data buffer).

    Strings of up to 12 bytes live in the view itself: such a column carries no
    buffer that another frame could share.
    """
    for field, column in zip(table.schema, table.columns):
        view = pa.types.is_string_view(field.type) or pa.types.is_binary_view(field.type)
        if not _has_view(pa, field.type):
            continue
        if not view:
            return True  # a view inside a list, struct or dictionary: judged by the file's length
        if any(len(chunk.buffers()) > 2 for chunk in column.chunks):
            return True
    return False


# ---------------------------------------------------------------- pandas copy-on-write


class _SharedMemory:
    """Stands, in pandas' reference tracking, for the processes that share a
    column's memory. It is never collected, so a block that lists it is
    always "referenced elsewhere", and pandas copies it before its first
    write, as it does for any frame whose data another frame still sees."""


_SHARED_MEMORY = _SharedMemory()
_SHARED_MEMORY_REF = weakref.ref(_SHARED_MEMORY)


def _read_only(ndarray: Any, values: Any) -> bool:
    """Whether a block's values lie on a numpy array that cannot be written."""
    if isinstance(values, ndarray):
        return not values.flags.writeable
    if hasattr(values, "_pa_array"):
        return False  # Arrow-backed: pandas replaces such arrays, never writes into them
    # Datetimes and categoricals (_ndarray), nullable numbers (_data, _mask).
    for attribute in ("_ndarray", "_data", "_mask"):
        inner = getattr(values, attribute, None)
        if isinstance(inner, ndarray) and not inner.flags.writeable:
            return True
    return False


def copy_on_write(frame: Any) -> Any:
    """Makes a frame read from the store copy each column on its first write.

    Columns that point into the store are read-only numpy arrays. Under
    pandas' copy-on-write (always on from pandas 3), an in-place change of a
    block that another object references copies that block first; the
    block's own values are never written. Listing the store's memory as one
    more reference makes a read-only block such a block: ``df.loc[...] =``,
    ``df[col] *= 2``, ``fillna(inplace=True)`` and the like copy the one
    column they change, once, and leave the store (and every other reader)
    untouched. Arrow-backed columns (strings) need nothing: pandas never
    writes into them. Without copy-on-write (pandas 2 with it off) pandas
    does not consult references, and the columns stay read-only.
    """
    ndarray = (_module("numpy") or __import__("numpy")).ndarray
    for block in getattr(getattr(frame, "_mgr", None), "blocks", ()):
        referenced = getattr(getattr(block, "refs", None), "referenced_blocks", None)
        if isinstance(referenced, list) and _read_only(ndarray, block.values):
            referenced.append(_SHARED_MEMORY_REF)
    return frame


# ---------------------------------------------------------------- frames read by another library


def _is_nested(pa: Any, arrow_type: Any) -> bool:
    return bool(
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
        or pa.types.is_list_view(arrow_type)
        or pa.types.is_large_list_view(arrow_type)
        or pa.types.is_struct(arrow_type)
        or pa.types.is_map(arrow_type)
        or pa.types.is_union(arrow_type)
    )


def _exact_pandas_column(pa: Any, pd: Any, column: Any) -> Any:
    """The pandas array for an Arrow column that ``to_pandas`` would change, else None.

    - integers with nulls: ``to_pandas`` makes them float64, which cannot hold
      every int64 (2**53 + 1 comes back 2**53); pandas' nullable integers can.
    - floats with both nulls and NaN: ``to_pandas`` makes both NaN, and so
      do pandas 3's nullable floats; ``pd.ArrowDtype`` keeps them apart.
    - lists, structs, maps and unions, and nanosecond times: ``to_pandas``
      makes Python objects that lose inner types (a list of ints with a null
      becomes an array of floats; ``datetime.time`` has no nanoseconds) or
      cannot convert them at all; ``pd.ArrowDtype`` holds them exactly, zero-copy.
    - run-end encoded columns, which pandas has no type for: decoded.
    """
    arrow_type = column.type
    if pa.types.is_run_end_encoded(arrow_type):
        import pyarrow.compute as pc

        values = pc.run_end_decode(column)
        exact = _exact_pandas_column(pa, pd, values)
        return exact if exact is not None else values.to_pandas()
    if _is_nested(pa, arrow_type) or (pa.types.is_time64(arrow_type) and arrow_type.unit == "ns"):
        return pd.arrays.ArrowExtensionArray(column)
    if column.null_count == 0:
        return None
    if pa.types.is_integer(arrow_type):
        name = f"{'U' if pa.types.is_unsigned_integer(arrow_type) else ''}Int{arrow_type.bit_width}"
        return pd.api.types.pandas_dtype(name).__from_arrow__(column)
    if pa.types.is_float32(arrow_type) or pa.types.is_float64(arrow_type):
        import pyarrow.compute as pc

        if pc.any(pc.is_nan(column)).as_py():
            return pd.arrays.ArrowExtensionArray(column)
    return None


def _pandas_from_table(table: Any) -> Any:
    """A pandas DataFrame of a table that no pandas frame was written as.

    ``to_pandas`` for the columns pandas holds exactly (numpy numbers,
    strings as ``str``, dictionaries as categoricals, times with their zone),
    pandas' own exact types for the rest (see ``_exact_pandas_column``).
    """
    pa = _module("pyarrow") or __import__("pyarrow")
    pd = _module("pandas") or __import__("pandas")
    series = (table.schema.metadata or {}).get(KIND_KEY) == b"series"
    table = _strip_brain_metadata(table)
    exact = {i: _exact_pandas_column(pa, pd, column) for i, column in enumerate(table.columns)}
    exact = {i: values for i, values in exact.items() if values is not None}
    plain = table.select([i for i in range(table.num_columns) if i not in exact]) if exact else table
    try:
        try:
            frame = plain.to_pandas(split_blocks=True)
        except KeyError:
            # pyarrow's split blocks lose track of canonical extension
            # columns (json, bool8, fixed_shape_tensor, opaque); whole
            # blocks take them.
            frame = plain.to_pandas()
    except pa.ArrowException as err:
        raise BrainCodecError(_pandas_refusal(plain, err)) from err
    for i in sorted(exact):
        frame.insert(i, table.schema.field(i).name, exact[i], allow_duplicates=True)
    copy_on_write(frame)
    return frame.iloc[:, 0] if series else frame


def _pandas_refusal(table: Any, err: BaseException) -> str:
    """Which column pandas could not take, and what to do instead."""
    for field in table.schema:
        try:
            table.select([field.name]).to_pandas()
        except Exception:
            return (
                f"pandas cannot hold column {field.name!r} of Arrow type {field.type} ({err}); "
                "read the object with as_arrow=True and convert that column first"
            )
    return f"pandas cannot hold this table ({err}); read it with as_arrow=True"


def _polars_from_table(table: Any) -> Any:
    """A polars DataFrame (or Series, for a stored Series) of any stored table."""
    import polars as pl

    metadata = table.schema.metadata or {}
    kind = metadata.get(KIND_KEY)
    pandas = table.schema.pandas_metadata
    if pandas is not None:
        # polars has no index: drop the columns pandas stored its index in, as pl.from_pandas does.
        index = {name for name in pandas.get("index_columns", []) if isinstance(name, str)}
        table = table.select([i for i, name in enumerate(table.schema.names) if name not in index])
    table = _strip_brain_metadata(table)
    for field in table.schema:
        if _holds_decimal256(field.type):
            # polars panics on it, and its panic prints a Rust backtrace
            # (twice: once more for the column search below) before the error.
            raise BrainCodecError(
                f"polars cannot read column {field.name!r} of Arrow type {field.type} (polars has no "
                "256-bit decimals); read the object with as_arrow=True and convert that column first"
            )
    try:
        frame = pl.from_arrow(table, rechunk=False)
    except (Exception, pl.exceptions.PanicException) as err:
        raise BrainCodecError(_polars_refusal(pl, table, err)) from err
    if kind == b"series" and isinstance(frame, pl.DataFrame):
        series = frame.to_series(0)
        if pandas is not None:
            name = json.loads(metadata[SERIES_NAME_KEY])
            series = series.alias("" if name is None else str(name))
        return series
    return frame


def _holds_decimal256(kind: Any) -> bool:
    """Whether an Arrow type is, or nests, a 256-bit decimal."""
    import pyarrow as pa

    if pa.types.is_decimal256(kind):
        return True
    return any(_holds_decimal256(kind.field(i).type) for i in range(getattr(kind, "num_fields", 0)))


def _polars_refusal(pl: Any, table: Any, err: BaseException) -> str:
    """Which column polars could not read, and what to do instead."""
    for field in table.schema:
        try:
            pl.from_arrow(table.select([field.name]), rechunk=False)
        except (Exception, pl.exceptions.PanicException):
            return (
                f"polars cannot read column {field.name!r} of Arrow type {field.type} ({err}); "
                "read the object with as_arrow=True and convert that column first"
            )
    return f"polars cannot read this table ({err}); read it with as_arrow=True"


# ---------------------------------------------------------------- pickle


def _pickle_parts(thing: Any) -> list[Any]:
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(thing, protocol=5, buffer_callback=buffers.append)
    # pickle refuses a non-contiguous PickleBuffer before handing it out, so
    # every out-of-band buffer here is one contiguous range.
    return [stream, *(buffer.raw() for buffer in buffers)]


def _unpickling_advice(name: str, err: Exception) -> str:
    """What went wrong rebuilding a pickled object, and what to do."""
    what = f"object {name!r} is a pickle this process cannot rebuild ({type(err).__name__}: {err})"
    if isinstance(err, (AttributeError, ImportError)):
        return (
            f"{what}; pickle stores a class by its module and name: import or define that class here "
            "the way the writer did (a class defined in the writer's __main__ script cannot be found "
            "by another program: move it into a module both import)"
        )
    return f"{what}; the bytes may come from another Python or library version: write the object again"


def decode_pickle(obj: Any) -> Any:
    parts = obj.parts()
    if not parts:
        raise BrainCodecError(f"object {obj.name!r} is a pickle with no parts; write it again")
    try:
        thing = pickle.loads(parts[0], buffers=parts[1:])
    except (MemoryError, OSError, BrainError):
        # Errors of the moment (a lost connection, no memory) pass as they
        # were, as they do when a value is pickled, and so do brain's own (a
        # pickled Brain reopens its store as it is rebuilt).
        raise
    except Exception as err:
        raise BrainUnpicklingError(_unpickling_advice(obj.name, err)) from err
    pd = _module("pandas")
    if pd is not None and isinstance(thing, (pd.DataFrame, pd.Series)):
        # Its numpy columns are read-only views of the store, as a frame
        # read through Arrow: changed in place, they copy first.
        copy_on_write(thing)
    elif pd is not None and isinstance(thing, (dict, list, tuple, set, frozenset)):
        # Frames inside a container (brain-plasma code stores dicts of
        # frames): the same for each. The walk is bounded (`_WALK_ITEMS`),
        # a fraction of what unpickling that many items costs.
        for frame in _frames_within(thing, (pd.DataFrame, pd.Series)):
            copy_on_write(frame)
    return thing


# How far `_frames_within` looks: containers this deep, this many items.
_WALK_DEPTH = 4
_WALK_ITEMS = 100_000


def _frames_within(thing: Any, kinds: tuple[type, ...]) -> list[Any]:
    """The frames (of ``kinds``) in the dicts, lists, tuples and sets that
    ``thing`` is made of, down to a few levels and a bounded number of items."""
    found: list[Any] = []
    todo: list[tuple[Any, int]] = [(thing, 0)]
    seen = 0
    while todo and seen < _WALK_ITEMS:
        item, depth = todo.pop()
        seen += 1
        if isinstance(item, kinds):
            found.append(item)
        elif depth < _WALK_DEPTH and isinstance(item, (dict, list, tuple, set, frozenset)):
            values = item.values() if isinstance(item, dict) else item
            todo.extend((value, depth + 1) for value in values)
    return found


# ---------------------------------------------------------------- dispatch

TRIED = "text (str), raw (bytes), ndarray (numpy), arrow (pyarrow), pandas, polars, pickle5"


# Writes a table: (store, namespace, name, codec, table, description, IPC
# file length or None). ``_write_arrow`` stores it whole; the frames layer
# passes its own, which stores large tables in parts.
TableWriter = Callable[[Any, str, str, str, Any, "str | None", "int | None"], None]


def encode(
    store: Any,
    namespace: str,
    name: str,
    thing: Any,
    description: str | None,
    write_table: TableWriter | None = None,
) -> None:
    """Writes ``thing`` with the codec that suits its type (a None description
    keeps the old one); tables through ``write_table`` (default: stored whole)."""
    write = write_table or _write_arrow
    if type(thing) is str:
        try:
            store.put_text(namespace, name, thing, description)
            return
        except UnicodeEncodeError:
            if _is_utf8(thing):
                raise  # the name, namespace or description
            # A lone surrogate in the value: pickled below, exactly.
    if type(thing) is bytes:
        store.put(namespace, name, "raw", [thing], description)
        return
    np = _module("numpy")
    if np is not None and type(thing) is np.ndarray and not thing.dtype.hasobject:
        _write_ndarray(store, namespace, name, thing, description)
        return
    pa = _module("pyarrow")
    if pa is not None and isinstance(thing, (pa.Table, pa.RecordBatch)):
        kind = b"record_batch" if isinstance(thing, pa.RecordBatch) else b"table"
        write(store, namespace, name, "arrow", _with_kind(thing, kind), description, None)
        return
    # A subclass of a frame (with attributes of its own, say) is pickled,
    # which keeps its class; Arrow would give back the base class.
    pd = _module("pandas")
    if pd is not None and type(thing) in (pd.DataFrame, pd.Series):
        if _write_pandas(store, namespace, name, thing, description, write):
            return
    pl = _module("polars")
    if pl is not None and type(thing) in (pl.DataFrame, pl.Series):
        kind = b"series" if isinstance(thing, pl.Series) else b"frame"
        dtypes = [thing.dtype] if isinstance(thing, pl.Series) else thing.dtypes
        if not any(_polars_holds_objects(pl, dtype) for dtype in dtypes):
            import pyarrow

            try:
                table, length = polars_table(thing, kind)
            except pyarrow.ArrowException:
                pass  # a type Arrow has not (Int128): pickle keeps it exactly
            else:
                write(store, namespace, name, "polars", table, description, length)
                return
    try:
        parts = _pickle_parts(thing)
    except _NOT_REFUSALS:
        raise
    except Exception as err:  # pickle and libraries raise many types: PicklingError, TypeError, polars' ComputeError...
        said = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise BrainUnsupportedObjectError(
            f"cannot store {name!r}: an object of type {type(thing).__module__}.{type(thing).__qualname__} "
            f"fits none of the codecs ({TRIED}); pickle said: {said}. "
            "Store a picklable form of it instead (e.g. its data, not its handle)."
        ) from err
    store.put_pickle(namespace, name, parts[0], parts[1:], description)


def _is_utf8(text: str) -> bool:
    """Whether ``text`` can be UTF-8 (a lone surrogate cannot: such a str is
    pickled, which keeps it exactly). ASCII, the common case of names, is
    told without encoding."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Errors of the moment, not of the object, raised while it is pickled:
# memory that ran out, a TimeoutError from a deadline's signal handler, a
# connection lost (OSError). The caller sees them as they are; anything
# else means the object cannot be pickled (pickle's own PicklingError and
# TypeError, a library's refusal such as polars' ComputeError).
_NOT_REFUSALS = (MemoryError, OSError)


def _labels_survive_arrow(pd: Any, columns: Any) -> bool:
    """False for column labels of mixed types (say ``"a"`` and ``7``, or tuples):
    pyarrow turns them into strings, with a warning."""
    levels = columns.levels if isinstance(columns, pd.MultiIndex) else [columns]
    return not any("mixed" in pd.api.types.infer_dtype(level, skipna=False) for level in levels)


def _same_index(back: Any, original: Any) -> bool:
    """Whether the column labels Arrow gives back are the original ones, of the same kind.

    Not so for bool labels (``[True, False]`` comes back ``[True, True]``),
    whose frames are pickled, or a RangeIndex of columns (it comes back an
    int64 Index), which ``_range_of_labels`` makes again.
    """
    return (
        type(back) is type(original)
        and back.dtype == original.dtype
        and list(back.names) == list(original.names)
        and back.equals(original)
    )


def _pandas_metadata_survives_arrow(thing: Any) -> bool:
    """Whether what pandas keeps beside a frame's values comes back from
    Arrow as it is: index names of str (pyarrow makes ``5`` into ``"5"``),
    ``attrs`` that JSON keeps (pyarrow drops others), and duplicate labels
    allowed (Arrow keeps no flags). Else the frame is pickled, which keeps
    them."""
    if any(name is not None and type(name) is not str for name in thing.index.names):
        return False
    if not thing.flags.allows_duplicate_labels:
        return False
    if thing.attrs:
        try:
            if json.loads(json.dumps(thing.attrs)) != thing.attrs:
                return False
        except (TypeError, ValueError):
            return False
    return True


def _range_of_labels(labels: Any) -> Any:
    """Column labels that were a RangeIndex, read back from Arrow as an int64
    Index (or an empty one): a RangeIndex again where they still step
    evenly, as pandas keeps one through drops, selections and insertions;
    else the Index as it is."""
    pd = _module("pandas") or __import__("pandas")
    if len(labels) == 0:
        return pd.RangeIndex(0, name=labels.name)
    values = labels.tolist()
    if not all(type(value) is int for value in values):
        return labels
    step = values[1] - values[0] if len(values) > 1 else 1
    if step == 0 or any(b - a != step for a, b in zip(values, values[1:])):
        return labels
    return pd.RangeIndex(values[0], values[-1] + step, step, name=labels.name)


def _index_freq(pd: Any, thing: Any) -> dict[bytes, bytes]:
    """The frequency of a datetime or timedelta index, which Arrow does not keep."""
    index = thing.index
    if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) and index.freq is not None:
        return {INDEX_FREQ_KEY: index.freqstr.encode()}
    return {}


# Frames shorter than this convert with ``from_pandas`` alone: the fast path
# has a fixed cost (a second schema pass, a second ``from_pandas`` call) that
# the NaN scans it saves repay only from about 30 000 to 100 000 rows (measured).
FAST_FLOAT_MIN_ROWS = 100_000


def _typed_without_values(pd: Any, dtype: Any) -> bool:
    """Whether ``pa.Schema.from_pandas`` finds the Arrow type of a column of this
    dtype without converting its values (object columns and categoricals are converted)."""
    np = _module("numpy")
    if isinstance(dtype, np.dtype):
        return dtype.kind in "biufmM" and dtype.isnative  # pyarrow refuses byte-swapped arrays
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(dtype, pd.CategoricalDtype)


def fast_float_columns(frame: Any, min_rows: int = FAST_FLOAT_MIN_ROWS) -> dict[int, Any]:
    """The float columns of a DataFrame that ``from_pandas_table`` converts itself,
    by position: plain numpy float64 or float32 columns without NaN.

    ``pa.Table.from_pandas`` scans every float column for NaN to build a null
    bitmap. A column without NaN gets no bitmap: its Arrow array is just its
    numpy buffer, which ``pa.array(values, from_pandas=False)`` wraps without
    the scan. The test for NaN is one ``min`` (NaN propagates through it).

    Empty when the frame should take the ordinary path: it is short, has no
    such column, or has a column or label that makes the schema pass costly or
    makes pyarrow warn (the fast path must not warn twice).
    """
    np = _module("numpy")
    pd = _module("pandas")
    if np is None or pd is None or type(frame) is not pd.DataFrame or len(frame) < min_rows:
        return {}
    index = frame.index
    if not frame.columns.is_unique or not _labels_survive_arrow(pd, frame.columns):
        return {}
    if any(level is not None and not isinstance(level, str) for level in index.names):
        return {}  # pyarrow warns that non-str index names become strings
    if frame.attrs:
        try:
            json.dumps(frame.attrs)
        except Exception:  # pyarrow warns and drops them
            return {}
    if not isinstance(index, pd.RangeIndex):
        levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
        if not all(_typed_without_values(pd, level.dtype) for level in levels):
            return {}
    if not all(_typed_without_values(pd, dtype) for dtype in frame.dtypes):
        return {}
    floats = (np.dtype("float64"), np.dtype("float32"))
    fast = {}
    for i, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, np.dtype) and dtype in floats:
            values = frame.iloc[:, i].to_numpy()
            if type(values) is np.ndarray and values.dtype == dtype and values.ndim == 1:
                if values.size == 0 or not np.isnan(values.min()):
                    fast[i] = values
    return fast


def from_pandas_table(frame: Any, min_rows: int = FAST_FLOAT_MIN_ROWS) -> Any:
    """``pa.Table.from_pandas(frame, preserve_index=None)``, the same Table, faster
    for large float columns without NaN (see ``fast_float_columns``).

    The other columns and the index are converted by ``from_pandas`` itself,
    the schema and its pandas metadata come from ``pa.Schema.from_pandas``,
    and the result is used only if every array has the type of its field:
    pyarrow builds the metadata from the types alone, so the Table is then
    the one ``from_pandas`` gives. Anything unexpected takes the ordinary path.
    """
    pa = _module("pyarrow") or __import__("pyarrow")
    fast = fast_float_columns(frame, min_rows)
    if fast:
        try:
            table = _table_with_fast_columns(pa, frame, fast)
        except Exception:
            table = None
        if table is not None:
            return table
    return pa.Table.from_pandas(frame, preserve_index=None)


def _table_with_fast_columns(pa: Any, frame: Any, fast: dict[int, Any]) -> Any:
    schema = pa.Schema.from_pandas(frame, preserve_index=None)
    labels = list(frame.columns)
    others = [label for i, label in enumerate(labels) if i not in fast]
    rest = pa.Table.from_pandas(frame, columns=others, preserve_index=None)
    # Data columns first, then the index columns, as from_pandas orders them.
    if rest.num_columns != len(schema) - len(fast) or len(schema) < len(labels):
        return None
    arrays: list[Any] = []
    taken = 0
    for i in range(len(schema)):
        if i in fast:
            array = pa.array(fast[i], from_pandas=False)
        else:
            array = rest.column(taken)
            taken += 1
        if array.type != schema.field(i).type:
            return None
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_pandas(
    store: Any, namespace: str, name: str, thing: Any, description: str | None, write: TableWriter
) -> bool:
    """Writes a pandas object as Arrow; False when Arrow cannot hold it exactly (then it is pickled).

    ``preserve_index=None`` stores a RangeIndex as metadata, so it comes back
    a RangeIndex (``True`` would turn it into an int64 column and Index);
    every other index is stored as columns either way.
    """
    import pyarrow as pa

    pd = _module("pandas")
    if not _pandas_metadata_survives_arrow(thing):
        return False
    try:
        if isinstance(thing, pd.Series):
            try:
                series_name = json.dumps(thing.name)
            except TypeError:
                return False
            named = json.loads(series_name)
            if type(named) is not type(thing.name) or named != thing.name:
                return False  # e.g. a tuple name would come back a list
            frame = thing.to_frame(name="__brain_series__")
            kind, extra = b"series", {SERIES_NAME_KEY: series_name.encode(), **_index_freq(pd, thing)}
        else:
            if not _labels_survive_arrow(pd, thing.columns):
                return False
            frame, kind, extra = thing, b"frame", _index_freq(pd, thing)
        table = from_pandas_table(frame)
        planned = _pandas_restores(pa, pd, frame, table)
        if planned is None:
            return False
        table, restores, expected = planned
        if kind == b"frame" and not _same_index(expected.columns, thing.columns):
            if not isinstance(thing.columns, pd.RangeIndex) or not _same_index(
                _range_of_labels(expected.columns), thing.columns
            ):
                return False
            # A RangeIndex of labels (pd.DataFrame(ndarray), a frame without
            # columns) comes back an int64 Index, or an empty one.
            restores["columns"] = "range"
        if restores:
            extra[PANDAS_DTYPES_KEY] = json.dumps(restores).encode()
        table = _with_kind(table, kind, extra)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        TypeError,
        ValueError,
        NotImplementedError,
        OverflowError,
    ):
        # Mixed-type object columns, Python ints past 64 bits and the like:
        # pickle keeps them exactly.
        return False
    write(store, namespace, name, "pandas", table, description, None)
    return True


def _string_dtype_json(pd: Any, dtype: Any) -> list[str]:
    return ["string", str(dtype.storage), "NA" if dtype.na_value is pd.NA else "nan"]


def _pandas_restores(pa: Any, pd: Any, frame: Any, table: Any) -> tuple[Any, dict[str, Any], Any] | None:
    """What Arrow's pandas metadata would not bring back, and how brain does:
    ``(table, restores, what to_pandas gives for the first row)``, or None when a
    column cannot come back exactly (the frame is then pickled).

    - ``pd.ArrowDtype`` columns: pyarrow cannot read back the pandas metadata
      of some (lists: "data type not understood") and gives Python objects
      for others (decimals); their numpy_type becomes "object", so any
      reader's ``to_pandas`` works, and brain wraps the Arrow column itself.
    - object columns of strings, numbers or bools: pandas 3 reads them back
      as ``str`` or numbers; brain gives the Python objects back.
    - object columns of lists, tuples or dicts: Arrow's lists and structs
      would come back as arrays and dicts with every key: pickled instead.
    - ``StringDtype`` of another storage or missing-value marker than
      pandas' default: brain converts back.
    - index levels of such dtypes: an object index is converted back; the
      others are pickled.
    - a frame without columns: its empty RangeIndex of columns (``_write_pandas``).
    """
    np = _module("numpy")
    pandas_meta = table.schema.pandas_metadata
    restores: dict[str, Any] = {}
    columns_meta = pandas_meta["columns"]
    patched = False
    markers: dict[int, str] = {}
    for i, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, pd.ArrowDtype):
            restores[f"c{i}"] = "arrow"
            columns_meta[i]["numpy_type"] = "object"
            patched = True
        elif dtype == np.dtype(object):
            values = frame.iloc[:, i]
            if _is_nested(pa, table.schema.field(i).type) or not _objects_survive_arrow(pd, values):
                return None
            marker = _missing_marker(pd, values, table.column(i))
            if marker is None:
                return None
            markers[i] = marker
    if patched:
        metadata = dict(table.schema.metadata)
        metadata[b"pandas"] = json.dumps(pandas_meta).encode()
        table = _with_metadata(table, metadata)
    # One row, not none: pandas 3 reads an empty string column back as object, a full one as str.
    expected = _without_arrow_columns(table.slice(0, 1), restores).to_pandas()
    for i, dtype in enumerate(frame.dtypes):
        back = expected.dtypes.iloc[i]
        if f"c{i}" in restores:
            continue
        if markers.get(i, "None") != "None":
            # Arrow's nulls come back as None: brain puts the marker back.
            restores[f"c{i}"] = ["object", markers[i]]
        elif back == dtype:
            continue
        elif dtype == np.dtype(object):
            restores[f"c{i}"] = "object"
        elif isinstance(dtype, pd.StringDtype):
            restores[f"c{i}"] = _string_dtype_json(pd, dtype)
    index, back_index = frame.index, expected.index
    if not isinstance(index, pd.RangeIndex):
        levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
        back_levels = back_index.levels if isinstance(back_index, pd.MultiIndex) else [back_index]
        for level, (original, back_level) in enumerate(zip(levels, back_levels)):
            if original.dtype == np.dtype(object) and (
                not _objects_survive_arrow(pd, original) or _missing_marker(pd, original) != "None"
            ):
                # A missing label other than None (NaN, say) would come back as None.
                return None
            if not isinstance(original.dtype, (pd.ArrowDtype, pd.StringDtype, np.dtype)):
                # pandas' other extension dtypes come back through Arrow's
                # metadata, or not at all (a nullable Int64 index comes back
                # float64, its large values rounded): then pickled.
                if back_level.dtype != original.dtype:
                    return None
                continue
            if original.dtype == back_level.dtype or isinstance(original.dtype, np.dtype) and original.dtype != object:
                continue
            if original.dtype == np.dtype(object) and not isinstance(index, pd.MultiIndex):
                restores[f"i{level}"] = "object"
            else:
                return None
    return table, restores, expected


# What pandas infers of an object column whose values Arrow stores as
# themselves: one Python type throughout (nulls aside). Mixed ones would come
# back changed: a str beside bytes as bytes, an int beside floats as a float.
_ARROW_EXACT_OBJECTS = {"string", "bytes", "integer", "floating", "boolean", "decimal", "date", "time", "empty"}


# The Python types Arrow gives back for the kinds of numbers and bools: numpy's
# scalars among them (``np.int64(1)``) would come back as Python's.
_ARROW_NUMBER_TYPES: dict[str, set[type]] = {"integer": {int}, "floating": {float}, "boolean": {bool}}


def _missing_marker(pd: Any, values: Any, stored: Any = None) -> str | None:
    """The marker of the missing values of object ``values``: ``"None"`` (or
    none missing), ``"nan"``, ``"NA"`` or ``"NaT"``. Arrow stores each as a
    null, which comes back as None, so brain records the marker and puts it
    back. None when they mix markers or use another (a numpy NaN scalar,
    ``Decimal("NaN")``): then the frame is pickled. ``stored``, the Arrow
    column of ``values``, tells where its nulls are (``pd.isna`` takes
    about 20 ms a million objects; Arrow found them already)."""
    if stored is None:
        mask = pd.isna(values)
        if not mask.any():
            return "None"
    elif stored.null_count == 0:
        return "None"
    else:
        mask = stored.is_null().to_numpy(zero_copy_only=False)
    markers = {type(None): "None", float: "nan", type(pd.NA): "NA", type(pd.NaT): "NaT"}
    found = {markers.get(kind) for kind in set(map(type, values.to_numpy()[mask]))}
    return found.pop() if len(found) == 1 else None


def _objects_survive_arrow(pd: Any, values: Any) -> bool:
    """Whether the Python objects ``values`` (an object column or index)
    come back as they are through Arrow; else the frame is pickled."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _ARROW_EXACT_OBJECTS and kind != "datetime":
        return False
    if kind not in _ARROW_NUMBER_TYPES and kind not in ("datetime", "date", "time"):
        # Decimals are among them: Arrow's one scale a column gives 1.5 back
        # as 1.50, equal, and readable as decimals by every library.
        return True
    import datetime as dt

    present = values[pd.notna(values)]
    if kind in _ARROW_NUMBER_TYPES:
        return set(map(type, present)) <= _ARROW_NUMBER_TYPES[kind]
    if kind == "datetime":
        # Python's own datetimes (a Timestamp's nanoseconds would be cut),
        # in one time zone a column, as Arrow has.
        return all(type(value) is dt.datetime for value in present) and len({v.tzinfo for v in present}) <= 1
    if kind == "date":
        # Dates alone: a datetime among them would lose its time.
        return all(type(value) is dt.date for value in present)
    return all(value.tzinfo is None for value in present)  # times: Arrow's have no zone


def _without_arrow_columns(table: Any, restores: dict[str, Any]) -> Any:
    """``table`` with its ``pd.ArrowDtype`` columns as nulls, for ``to_pandas``:
    brain wraps those columns itself, and converting them to Python objects
    could fail (a nanosecond time) or cost a pass over every value."""
    pa = _module("pyarrow") or __import__("pyarrow")
    for key, how in restores.items():
        if how == "arrow":
            position = int(key[1:])
            table = table.set_column(position, table.schema.field(position).name, pa.nulls(table.num_rows))
    return table


def _object_marker(how: Any) -> str | None:
    """The missing-value marker of a column restored as Python objects
    (``"object"``, which has None, or ``["object", marker]``); None when
    ``how`` restores it otherwise."""
    if how == "object":
        return "None"
    if isinstance(how, list) and how[0] == "object":
        return str(how[1])
    return None


def _missing_value(pd: Any, marker: str) -> Any:
    """The missing value a marker of ``_missing_marker`` stands for."""
    return {"nan": float("nan"), "NA": pd.NA, "NaT": pd.NaT}[marker]


def _restore_pandas_dtype(frame: Any, table: Any, key: str, how: Any) -> None:
    """Gives column (``c<position>``) or index (``i0``) ``key`` of a frame read
    from Arrow the dtype it was written with (see ``_pandas_restores``)."""
    np = _module("numpy") or __import__("numpy")
    pd = _module("pandas") or __import__("pandas")
    position = int(key[1:])
    if key[0] == "i":
        frame.index = frame.index.astype(object)
        return
    column = table.column(position)
    if how == "arrow":
        values: Any = pd.arrays.ArrowExtensionArray(column)
    elif (marker := _object_marker(how)) is not None:
        current = frame.iloc[:, position]
        if current.dtype == np.dtype(object):
            # pandas 2's to_pandas gave the Python objects already, None for nulls.
            objects = current.to_numpy(copy=True)
        else:
            objects = np.empty(len(column), dtype=object)
            objects[:] = column.to_pylist()
        if marker != "None" and column.null_count:
            # Arrow's nulls come back as None; the frame had another marker.
            objects[column.is_null().to_numpy(zero_copy_only=False)] = _missing_value(pd, marker)
        # A Series keeps dtype object; an array of str would be inferred as str.
        values = pd.Series(objects, index=frame.index, dtype=object, copy=False)
    else:
        _, storage, na = how
        # pandas 2.2's StringDtype takes no na_value: NA is its only marker.
        dtype = pd.StringDtype(storage) if na == "NA" else pd.StringDtype(storage, na_value=np.nan)
        values = frame.iloc[:, position].astype(dtype)
    frame.isetitem(position, values)


LIBRARIES = ("arrow", "pandas", "polars")


def column_list(columns: Any) -> list[Any]:
    """``columns=`` as a list: a list or tuple of labels, a pandas Index or
    a numpy array of them (``df.columns[:3]``); not a str, which would be
    its letters."""
    if hasattr(columns, "tolist") and not isinstance(columns, (str, bytes)):
        columns = columns.tolist()
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence):
        raise TypeError(f"columns must be a list of column names, not {type(columns).__name__}")
    return list(columns)


def _pickled_frame_columns(obj: Any, thing: Any, columns: Sequence[Any]) -> Any:
    """``columns`` of a pandas frame that was pickled (Arrow could not hold it
    exactly: say, column labels of mixed kinds), selected after the whole
    frame is read."""
    pd = _module("pandas")
    if pd is None or not isinstance(thing, pd.DataFrame):
        raise TypeError(
            f"object {obj.name!r} is a pickled {type(thing).__name__}, not a table: columns= picks columns of a "
            "stored table (pyarrow, pandas or polars); read it without columns="
        )
    missing = [column for column in columns if column not in thing.columns]
    if missing:
        raise column_not_exist(obj.namespace, obj.name, missing, list(thing.columns))
    return thing[list(columns)]


def _frame_library(thing: Any) -> str | None:
    """The library whose frame (or Series, or table) ``thing`` is, if any."""
    pd, pl, pa = _module("pandas"), _module("polars"), _module("pyarrow")
    if pd is not None and isinstance(thing, (pd.DataFrame, pd.Series)):
        return "pandas"
    if pl is not None and isinstance(thing, (pl.DataFrame, pl.Series)):
        return "polars"
    if pa is not None and isinstance(thing, (pa.Table, pa.RecordBatch)):
        return "arrow"
    return None


def _pickled_as(obj: Any, thing: Any, library: str | None) -> Any:
    """A pickled value asked for as ``library``'s: a frame Arrow could not
    hold exactly was pickled, and reads back in its own library only, so
    another library's is refused rather than the frame handed back as it is."""
    own = _frame_library(thing)
    if library is None or own is None or own == library:
        return thing
    raise BrainCodecError(
        f"object {obj.name!r} in namespace {obj.namespace!r} is a {own} {type(thing).__name__} stored pickled "
        "(as brain stores what Arrow cannot hold exactly, such as an object column of mixed types or a "
        f"subclass of a frame), so it reads back in {own} only: read it without as_{library}=True, and "
        "convert it if what the conversion changes is acceptable"
    )


def decode(
    obj: Any, as_arrow: bool = False, library: str | None = None, columns: Sequence[Any] | None = None
) -> Any:
    """The Python object for a stored ``Object``.

    A table (written from pyarrow, pandas, polars or Rust) comes back as the
    writer's kind of object, or as ``library``'s when one is named
    ("arrow", "pandas" or "polars"; ``as_arrow`` is "arrow"), with only
    ``columns`` when given (see ``read_arrow``). A frame that was pickled
    reads back in its own library only (``_pickled_as``). Other objects
    ignore ``library`` and refuse ``columns``.
    """
    if as_arrow:
        library = "arrow"
    if library is not None and library not in LIBRARIES:
        raise ValueError(f"library must be one of {', '.join(LIBRARIES)}, not {library!r}")
    codec = obj.codec
    if columns is not None:
        columns = column_list(columns)
        if codec == "pickle5":
            return _pickled_as(obj, _pickled_frame_columns(obj, decode_pickle(obj), columns), library)
        if codec not in LIBRARIES:
            raise TypeError(
                f"object {obj.name!r} is stored as {codec}, not as a table: columns= picks columns of a "
                "stored table (pyarrow, pandas or polars); read it without columns="
            )
    if codec in LIBRARIES and library is not None and (library != codec or library == "arrow"):
        if library == "arrow":
            return _user_table(obj, columns)
        table = read_arrow(obj, columns)
        if library == "pandas":
            # A pandas frame copied by another writer (Rust) still carries pandas' metadata.
            if table.schema.pandas_metadata is not None:
                return _pandas_from_pandas_table(table)
            return _pandas_from_table(table)
        return _polars_from_table(table)
    if codec == "ndarray":
        return decode_ndarray(obj)
    if codec == "pickle5":
        return _pickled_as(obj, decode_pickle(obj), library)
    if codec == "arrow":
        return decode_arrow(obj, columns)
    if codec == "pandas":
        return decode_pandas(obj, columns=columns)
    if codec == "polars":
        return decode_polars(obj, columns=columns)
    if codec == "text":
        return str(memoryview(obj), "utf-8")
    if codec == "raw":
        return obj.tobytes()
    raise BrainCodecError(
        f"object {obj.name!r} uses codec {codec!r}, which this release of brain cannot read; upgrade brain"
    )


__all__ = ["encode", "decode", "read_arrow", "_brain"]
