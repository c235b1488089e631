"""How Python objects become bytes in the store, and back.

Every codec keeps reads zero-copy where the target library allows it:

- numpy arrays: the ``ndarray`` layout (dtype, shape, order, raw buffer);
  read back as a read-only array over the shared memory.
- pyarrow Tables and RecordBatches, pandas and polars objects: an Arrow IPC
  file, streamed into the store with one copy and read back with
  ``pyarrow.ipc`` over the shared memory.
- str: UTF-8 text; bytes: raw bytes.
- anything else: pickle protocol 5 with out-of-band buffers, so arrays
  inside dicts and lists stay zero-copy too.

Heavy libraries are imported only when an object of theirs is stored or read.
"""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from typing import Any

from . import _brain
from .exceptions import BrainCodecError, BrainUnsupportedObjectError

KIND_KEY = b"brain.kind"
SERIES_NAME_KEY = b"brain.series_name"
INDEX_FREQ_KEY = b"brain.index_freq"


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
    with pa.ipc.new_file(sink, table.schema) as ipc:
        if isinstance(table, pa.RecordBatch):
            ipc.write_batch(table)
        else:
            ipc.write_table(table)


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


def _write_arrow(store: Any, namespace: str, name: str, codec: str, table: Any, description: str | None) -> None:
    """Streams ``table`` into the store as an Arrow IPC file.

    The file's length is computed first and given to the writer, so the
    store reserves capacity and allocates the file in one step.
    """
    pa = _module("pyarrow") or __import__("pyarrow")
    import pyarrow.ipc  # noqa: F401  (the submodule is not loaded by `import pyarrow`)

    expected_len = ipc_file_len(table)
    writer = store.writer(namespace, name, codec, description, expected_len)
    try:
        _write_ipc(pa, writer, table)
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
    return schema_or_table.replace_schema_metadata(metadata)


def read_arrow(obj: Any) -> Any:
    """The pyarrow Table in a payload, its columns pointing into the store."""
    import pyarrow as pa
    import pyarrow.ipc

    return pa.ipc.open_file(pa.py_buffer(obj)).read_all()


def _strip_brain_metadata(table: Any) -> Any:
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"brain.")}
    return table.replace_schema_metadata(metadata or None)


def decode_arrow(obj: Any) -> Any:
    table = read_arrow(obj)
    kind = (table.schema.metadata or {}).get(KIND_KEY)
    table = _strip_brain_metadata(table)
    if kind == b"record_batch":
        batches = table.to_batches()
        if len(batches) == 1:
            return batches[0]
        return table.combine_chunks().to_batches()[0]
    return table


def decode_pandas(obj: Any, as_arrow: bool = False) -> Any:
    table = read_arrow(obj)
    metadata = table.schema.metadata or {}
    if as_arrow:
        return _strip_brain_metadata(table)
    frame = table.to_pandas(split_blocks=True)
    freq = metadata.get(INDEX_FREQ_KEY)
    if freq is not None:
        frame.index = type(frame.index)(frame.index, freq=freq.decode())
    if metadata.get(KIND_KEY) == b"series":
        series = frame.iloc[:, 0]
        series.name = json.loads(metadata[SERIES_NAME_KEY])
        return series
    return frame


def decode_polars(obj: Any, as_arrow: bool = False) -> Any:
    table = read_arrow(obj)
    metadata = table.schema.metadata or {}
    if as_arrow:
        return _strip_brain_metadata(table)
    import polars as pl

    frame = pl.from_arrow(_strip_brain_metadata(table), rechunk=False)
    if metadata.get(KIND_KEY) == b"series" and isinstance(frame, pl.DataFrame):
        return frame.to_series(0)
    return frame


# ---------------------------------------------------------------- pickle


def _pickle_parts(thing: Any) -> list[Any]:
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(thing, protocol=5, buffer_callback=buffers.append)
    # pickle refuses a non-contiguous PickleBuffer before handing it out, so
    # every out-of-band buffer here is one contiguous range.
    return [stream, *(buffer.raw() for buffer in buffers)]


def decode_pickle(obj: Any) -> Any:
    parts = obj.parts()
    if not parts:
        raise BrainCodecError(f"object {obj.name!r} is a pickle with no parts; write it again")
    return pickle.loads(parts[0], buffers=parts[1:])


# ---------------------------------------------------------------- dispatch

TRIED = "text (str), raw (bytes), ndarray (numpy), arrow (pyarrow), pandas, polars, pickle5"


def encode(store: Any, namespace: str, name: str, thing: Any, description: str | None) -> None:
    """Writes ``thing`` with the codec that suits its type (a None description keeps the old one)."""
    if type(thing) is str:
        store.put_text(namespace, name, thing, description)
        return
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
        _write_arrow(store, namespace, name, "arrow", _with_kind(thing, kind), description)
        return
    pd = _module("pandas")
    if pd is not None and isinstance(thing, (pd.DataFrame, pd.Series)):
        if _write_pandas(store, namespace, name, thing, description):
            return
    pl = _module("polars")
    if pl is not None and isinstance(thing, (pl.DataFrame, pl.Series)):
        if isinstance(thing, pl.Series):
            table = _with_kind(thing.to_frame().to_arrow(), b"series")
        else:
            table = _with_kind(thing.to_arrow(), b"frame")
        _write_arrow(store, namespace, name, "polars", table, description)
        return
    try:
        parts = _pickle_parts(thing)
    except Exception as err:  # pickle raises many types: PicklingError, TypeError, AttributeError...
        raise BrainUnsupportedObjectError(
            f"cannot store {name!r}: an object of type {type(thing).__module__}.{type(thing).__qualname__} "
            f"fits none of the codecs ({TRIED}); pickle said: {err}. "
            "Store a picklable form of it instead (e.g. its data, not its handle)."
        ) from err
    store.put_pickle(namespace, name, parts[0], parts[1:], description)


def _labels_survive_arrow(pd: Any, columns: Any) -> bool:
    """False for column labels of mixed types (say ``"a"`` and ``7``, or tuples):
    pyarrow turns them into strings, with a warning."""
    levels = columns.levels if isinstance(columns, pd.MultiIndex) else [columns]
    return not any("mixed" in pd.api.types.infer_dtype(level, skipna=False) for level in levels)


def _same_index(back: Any, original: Any) -> bool:
    """Whether the column labels Arrow gives back are the original ones, of the same kind.

    Not so for bool labels (``[True, False]`` comes back ``[True, True]``) or a
    RangeIndex of columns (it comes back an int64 Index): those frames are pickled.
    """
    return (
        type(back) is type(original)
        and back.dtype == original.dtype
        and list(back.names) == list(original.names)
        and back.equals(original)
    )


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


def _write_pandas(store: Any, namespace: str, name: str, thing: Any, description: str | None) -> bool:
    """Writes a pandas object as Arrow; False when Arrow cannot hold it (then it is pickled).

    ``preserve_index=None`` stores a RangeIndex as metadata, so it comes back
    a RangeIndex (``True`` would turn it into an int64 column and Index);
    every other index is stored as columns either way.
    """
    import pyarrow as pa

    pd = _module("pandas")
    try:
        if isinstance(thing, pd.Series):
            try:
                series_name = json.dumps(thing.name)
            except TypeError:
                return False
            named = json.loads(series_name)
            if type(named) is not type(thing.name) or named != thing.name:
                return False  # e.g. a tuple name would come back a list
            table = from_pandas_table(thing.to_frame(name="__brain_series__"))
            table = _with_kind(table, b"series", {SERIES_NAME_KEY: series_name.encode(), **_index_freq(pd, thing)})
        else:
            if not _labels_survive_arrow(pd, thing.columns):
                return False
            table = from_pandas_table(thing)
            if not _same_index(table.schema.empty_table().to_pandas().columns, thing.columns):
                return False
            table = _with_kind(table, b"frame", _index_freq(pd, thing))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        # Mixed-type object columns and the like: pickle keeps them exactly.
        return False
    _write_arrow(store, namespace, name, "pandas", table, description)
    return True


def decode(obj: Any, as_arrow: bool = False) -> Any:
    """The Python object for a stored ``Object``."""
    codec = obj.codec
    if codec == "ndarray":
        return decode_ndarray(obj)
    if codec == "pickle5":
        return decode_pickle(obj)
    if codec == "arrow":
        return decode_arrow(obj) if not as_arrow else _strip_brain_metadata(read_arrow(obj))
    if codec == "pandas":
        return decode_pandas(obj, as_arrow)
    if codec == "polars":
        return decode_polars(obj, as_arrow)
    if codec == "text":
        return str(memoryview(obj), "utf-8")
    if codec == "raw":
        return obj.tobytes()
    raise BrainCodecError(
        f"object {obj.name!r} uses codec {codec!r}, which this release of brain cannot read; upgrade brain"
    )


__all__ = ["encode", "decode", "read_arrow", "_brain"]
