"""How pandas, pyarrow and polars objects become Arrow IPC files in the store.

The float fast path must build exactly the Table ``pa.Table.from_pandas(frame,
preserve_index=None)`` builds (same arrays, chunks, schema and pandas
metadata, hence the same bytes in the store), and every Arrow write must
announce the exact length of the file it then writes.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (the submodule is not loaded by `import pyarrow`)
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from brain import Brain, _codecs
from brain._codecs import FAST_FLOAT_MIN_ROWS, fast_float_columns, from_pandas_table, ipc_file_len
from brain.exceptions import BrainStoreFullError


def _ipc_bytes(table: Any) -> bytes:
    sink = pa.BufferOutputStream()
    _codecs._write_ipc(pa, sink, table)
    return sink.getvalue().to_pybytes()


def _assert_same_table(got: Any, expected: Any) -> None:
    """Equal in every respect that reaches the store, bytes included."""
    assert got.schema.equals(expected.schema, check_metadata=True), f"{got.schema}\n!=\n{expected.schema}"
    assert got.schema.metadata == expected.schema.metadata
    assert got.equals(expected, check_metadata=True)
    assert [c.num_chunks for c in got.columns] == [c.num_chunks for c in expected.columns]
    assert _ipc_bytes(got) == _ipc_bytes(expected)


def _fast_table(frame: pd.DataFrame) -> Any:
    """The Table of the fast path itself, with no fallback to from_pandas."""
    fast = fast_float_columns(frame, min_rows=0)
    assert fast, "the frame does not take the fast path"
    table = _codecs._table_with_fast_columns(pa, frame, fast)
    assert table is not None, "the fast path gave up on a frame it accepted"
    return table


def _check(frame: pd.DataFrame) -> None:
    expected = pa.Table.from_pandas(frame, preserve_index=None)
    _assert_same_table(_fast_table(frame), expected)
    _assert_same_table(from_pandas_table(frame, min_rows=0), expected)


N = 64
RNG = np.random.default_rng(7)


def _floats(n: int = N, dtype: str = "f8") -> np.ndarray:
    return RNG.standard_normal(n).astype(dtype)


def _with_nan(n: int = N) -> np.ndarray:
    values = _floats(n)
    values[::5] = np.nan
    return values


def _base(n: int = N) -> dict[str, Any]:
    return {
        "price": _floats(n),
        "units": RNG.integers(0, 1000, n),
        "sku": pd.array([f"k{i % 7}" for i in range(n)], dtype="str"),
    }


FAST = {
    "benchmark columns": lambda: pd.DataFrame(
        {**{f"price_{i}": _floats() for i in range(5)}, **_base()}
    ),
    "RangeIndex with start, step and name": lambda: pd.DataFrame(_base()).set_axis(
        pd.RangeIndex(10, 10 + 3 * N, 3, name="r")
    ),
    "RangeIndex named like a column": lambda: pd.DataFrame(_base()).set_axis(pd.RangeIndex(5, 5 + N, name="price")),
    "negative RangeIndex step": lambda: pd.DataFrame(_base()).set_axis(pd.RangeIndex(N, 0, -1)),
    "int index named like a fast column": lambda: pd.DataFrame(_base(), index=pd.Index(np.arange(N) * 2, name="price")),
    "int index named like a column with NaN": lambda: pd.DataFrame(
        {"x": _with_nan(), "y": _floats()}, index=pd.Index(np.arange(N), name="x")
    ),
    "column named like a generated index name": lambda: pd.DataFrame(
        {"__index_level_0__": _floats(), "y": _floats()}, index=pd.Index(np.arange(N) + 1)
    ),
    "string index": lambda: pd.DataFrame(_base(), index=pd.Index([f"r{i}" for i in range(N)], name="row")),
    "float index": lambda: pd.DataFrame(_base(), index=pd.Index(_floats())),
    "datetime index with time zone": lambda: pd.DataFrame(
        _base(), index=pd.date_range("2024-03-30", periods=N, freq="h", tz="Europe/Paris", name="t")
    ),
    "MultiIndex": lambda: pd.DataFrame(
        _base(), index=pd.MultiIndex.from_arrays([np.arange(N) % 3, [f"s{i}" for i in range(N)]], names=["a", None])
    ),
    "int column labels": lambda: pd.DataFrame(np.stack([_floats(), _floats(), _floats()], axis=1), columns=[30, 10, 20]),
    "RangeIndex columns of a 2-d block": lambda: pd.DataFrame(np.stack([_floats(), _with_nan(), _floats()], axis=1)),
    "float column labels": lambda: pd.DataFrame({0.5: _floats(), 1.5: _with_nan()}),
    "datetime column labels": lambda: pd.DataFrame(
        {pd.Timestamp("2020-01-01"): _floats(), pd.Timestamp("2020-01-02"): RNG.integers(0, 9, N)}
    ),
    "named columns": lambda: pd.DataFrame(_base()).rename_axis(columns="fields"),
    "MultiIndex columns": lambda: pd.DataFrame(
        {("x", "a"): _floats(), ("x", "b"): _with_nan(), ("y", "a"): RNG.integers(0, 9, N)}
    ).rename_axis(columns=["top", "sub"]),
    "float32 beside float64": lambda: pd.DataFrame({"f4": _floats(dtype="f4"), "f8": _floats(), "g4": _floats(dtype="f4")}),
    "float columns with NaN, inf, -0.0 and subnormals": lambda: pd.DataFrame(
        {
            "nan": _with_nan(),
            "inf": np.r_[np.inf, -np.inf, _floats(N - 2)],
            "zeros": np.r_[-0.0, 0.0, 5e-324, -5e-324, np.zeros(N - 4)],
            "huge": np.full(N, 1e308),
            "all nan": np.full(N, np.nan),
        }
    ),
    "strided float columns": lambda: pd.DataFrame({"a": _floats(3 * N)[::3], "b": _floats(2 * N)[1::2]}),
    "nullable and pyarrow floats beside plain ones": lambda: pd.DataFrame(
        {
            "plain": _floats(),
            "Float64": pd.array(np.r_[_floats(N - 1), np.nan], dtype="Float64"),
            "Float32": pd.array(_floats(dtype="f4"), dtype="Float32"),
            "arrow": pd.array(_floats(), dtype=pd.ArrowDtype(pa.float64())),
            "float16": _floats(dtype="f2"),
        }
    ),
    "every cheaply typed dtype": lambda: pd.DataFrame(
        {
            "f": _floats(),
            "i1": RNG.integers(-9, 9, N).astype("i1"),
            "u8": RNG.integers(0, 9, N).astype("u8"),
            "b": RNG.integers(0, 2, N).astype(bool),
            "t": pd.date_range("2024-01-01", periods=N, freq="s"),
            "t tz": pd.date_range("2024-01-01", periods=N, freq="D", tz="UTC"),
            "td": pd.to_timedelta(np.arange(N), unit="ms"),
            "Int64": pd.array([None, *range(N - 1)], dtype="Int64"),
            "boolean": pd.array([True, None] * (N // 2), dtype="boolean"),
            "string": pd.array([None, *map(str, range(N - 1))], dtype="string"),
            "str": pd.array([None, *map(str, range(N - 1))], dtype="str"),
            "arrow int": pd.array(range(N), dtype=pd.ArrowDtype(pa.int32())),
            "period": pd.period_range("2024-01", periods=N, freq="M"),
            "interval": pd.interval_range(0, N),
        }
    ),
    "attrs": lambda: pd.DataFrame(_base()).pipe(lambda f: f.attrs.update({"source": "test", "n": [1, 2]}) or f),
    "a Series as brain stores it": lambda: pd.Series(_floats(), name="s", index=pd.Index(np.arange(N), name="k")).to_frame(
        name="__brain_series__"
    ),
    "no rows": lambda: pd.DataFrame({"a": np.array([], "f8"), "b": np.array([], "f4"), "c": np.array([], "i8")}),
    "no rows and a string index": lambda: pd.DataFrame({"a": np.array([], "f8")}, index=pd.Index([], dtype="str")),
    "one row": lambda: pd.DataFrame({"a": [1.5], "b": ["x"]}),
}


@pytest.mark.parametrize("make", FAST.values(), ids=FAST.keys())
def test_the_float_fast_path_builds_the_table_from_pandas_builds(make) -> None:
    _check(make())


def test_only_plain_native_float_columns_without_nan_take_the_fast_path() -> None:
    frame = FAST["float columns with NaN, inf, -0.0 and subnormals"]()
    assert sorted(fast_float_columns(frame, min_rows=0)) == [1, 2, 3]
    frame = FAST["nullable and pyarrow floats beside plain ones"]()
    assert sorted(fast_float_columns(frame, min_rows=0)) == [0]
    frame = FAST["float32 beside float64"]()
    assert sorted(fast_float_columns(frame, min_rows=0)) == [0, 1, 2]


ORDINARY = {
    "short": lambda: pd.DataFrame(_base(FAST_FLOAT_MIN_ROWS - 1)),
    "duplicate labels": lambda: pd.DataFrame(np.ones((N, 2)), columns=["a", "a"]),
    "object column": lambda: pd.DataFrame({"a": _floats(), "o": pd.Series([str(i) for i in range(N)], dtype=object)}),
    "categorical column": lambda: pd.DataFrame({"a": _floats(), "c": pd.Categorical(["x", "y"] * (N // 2))}),
    "object index": lambda: pd.DataFrame({"a": _floats()}, index=pd.Index([f"r{i}" for i in range(N)], dtype=object)),
    "categorical index": lambda: pd.DataFrame({"a": _floats()}, index=pd.CategoricalIndex(["x", "y"] * (N // 2))),
    "mixed labels": lambda: pd.DataFrame({"a": _floats(), 7: _floats()}),
    "no float column without NaN": lambda: pd.DataFrame({"a": _with_nan(), "i": np.arange(N)}),
    "no columns": lambda: pd.DataFrame(index=pd.RangeIndex(N)),
    "big-endian float column": lambda: pd.DataFrame({"a": _floats(), "b": _floats().astype(">f8")}),
    "attrs that are not JSON": lambda: pd.DataFrame({"a": _floats()}).pipe(lambda f: f.attrs.update({"x": object()}) or f),
}


@pytest.mark.parametrize("make", ORDINARY.values(), ids=ORDINARY.keys())
def test_other_frames_take_the_ordinary_path(make) -> None:
    frame = make()
    min_rows = FAST_FLOAT_MIN_ROWS if len(frame) == FAST_FLOAT_MIN_ROWS - 1 else 0
    assert fast_float_columns(frame, min_rows=min_rows) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyarrow's own warnings for some labels and attrs
        try:
            expected = pa.Table.from_pandas(frame, preserve_index=None)
        except (ValueError, TypeError, pa.ArrowException) as err:
            with pytest.raises(type(err)):
                from_pandas_table(frame, min_rows=min_rows)
            return
        _assert_same_table(from_pandas_table(frame, min_rows=min_rows), expected)


def test_a_non_string_index_name_warns_once_as_pyarrow_does() -> None:
    frame = pd.DataFrame({"a": _floats()}, index=pd.Index(np.arange(N), name=3))
    assert fast_float_columns(frame, min_rows=0) == {}
    with pytest.warns(UserWarning, match="non-str index name") as record:
        from_pandas_table(frame, min_rows=0)
    assert len(record) == 1


class _PyarrowWithSchema:
    """pyarrow, with ``Schema.from_pandas`` replaced (pyarrow's classes cannot be patched)."""

    def __init__(self, from_pandas: Any) -> None:
        self.Schema = type("Schema", (), {"from_pandas": staticmethod(from_pandas)})

    def __getattr__(self, name: str) -> Any:
        return getattr(pa, name)


def test_a_type_other_than_the_schema_s_makes_the_fast_path_give_up() -> None:
    frame = FAST["benchmark columns"]()
    fast = fast_float_columns(frame, min_rows=0)

    def float32_first(df: Any, preserve_index: Any = None) -> Any:
        schema = pa.Schema.from_pandas(df, preserve_index=preserve_index)
        return schema.set(0, pa.field(schema.field(0).name, pa.float32()))

    assert _codecs._table_with_fast_columns(_PyarrowWithSchema(float32_first), frame, fast) is None
    assert _codecs._table_with_fast_columns(_PyarrowWithSchema(pa.Schema.from_pandas), frame, fast) is not None


@pytest.mark.parametrize("outcome", [None, RuntimeError("unexpected")], ids=["gives up", "raises"])
def test_when_the_fast_path_fails_from_pandas_builds_the_table(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> None:
    frame = FAST["benchmark columns"]()

    def fails(*args: Any) -> Any:
        if outcome is not None:
            raise outcome
        return None

    monkeypatch.setattr(_codecs, "_table_with_fast_columns", fails)
    _assert_same_table(from_pandas_table(frame, min_rows=0), pa.Table.from_pandas(frame, preserve_index=None))


# ---------------------------------------------------------------- generated frames

NAMES = st.one_of(st.none(), st.text(alphabet="ab_0", max_size=3))
COLUMN_NAMES = st.one_of(st.text(alphabet="abx_0", max_size=3), st.integers(-3, 3))


@st.composite
def _column(draw: Any, n: int) -> Any:
    kind = draw(
        st.sampled_from(
            ["f8", "f4", "f8 nan", "f4 nan", "f8 any", "i8", "bool", "str", "Float64", "arrow f8", "datetime", "Int64"]
        )
    )
    if kind in ("f8", "f4"):
        return draw(hnp.arrays(kind, n, elements=st.floats(allow_nan=False, width=32 if kind == "f4" else 64)))
    if kind.endswith("nan"):
        values = draw(hnp.arrays(kind[:2], n, elements=st.floats(width=32 if kind[:2] == "f4" else 64)))
        if n:
            values[draw(st.integers(0, n - 1))] = np.nan
        return values
    if kind == "f8 any":
        return draw(hnp.arrays("f8", n))
    if kind == "i8":
        return draw(hnp.arrays("i8", n))
    if kind == "bool":
        return draw(hnp.arrays(bool, n))
    if kind == "str":
        return pd.array(draw(st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=n, max_size=n)), dtype="str")
    if kind == "Float64":
        return pd.array(draw(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n)), dtype="Float64")
    if kind == "arrow f8":
        values = draw(st.lists(st.floats(allow_nan=False), min_size=n, max_size=n))
        return pd.array(values, dtype=pd.ArrowDtype(pa.float64()))
    if kind == "datetime":
        return pd.to_datetime(draw(hnp.arrays("i8", n, elements=st.integers(0, 2**50))), unit="us")
    values = draw(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), min_size=n, max_size=n))
    return pd.array(values, dtype="Int64")


@st.composite
def _index(draw: Any, n: int, column_names: list[Any]) -> Any:
    kind = draw(st.sampled_from(["range", "int", "str", "datetime", "multi", "float"]))
    name = draw(st.one_of(NAMES, st.sampled_from([c for c in column_names if isinstance(c, str)] or [None])))
    if kind == "range":
        start = draw(st.integers(-50, 50))
        step = draw(st.sampled_from([-5, -1, 1, 2, 7]))
        return pd.RangeIndex(start, start + step * n, step, name=name)
    if kind == "int":
        return pd.Index(draw(hnp.arrays("i8", n)), name=name)
    if kind == "float":
        return pd.Index(draw(hnp.arrays("f8", n)), name=name)
    if kind == "str":
        return pd.Index(draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype="str", name=name)
    if kind == "datetime":
        nanos = draw(hnp.arrays("i8", n, elements=st.integers(0, 2**50)))
        return pd.DatetimeIndex(pd.to_datetime(nanos, unit="ns"), name=name)
    other = draw(NAMES)
    return pd.MultiIndex.from_arrays([np.arange(n) % 3, draw(hnp.arrays("f8", n))], names=[name, other])


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(0, 20))
    width = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["str", "str", "str", "int", "mixed"]))
    if kind == "str":
        labels = draw(st.lists(st.text(alphabet="abx_0", max_size=3), min_size=width, max_size=width, unique=True))
    elif kind == "int":
        labels = draw(st.lists(st.integers(-3, 9), min_size=width, max_size=width, unique=True))
    else:
        labels = draw(st.lists(COLUMN_NAMES, min_size=width, max_size=width, unique_by=lambda c: (type(c), c)))
    frame = pd.DataFrame({label: draw(_column(n)) for label in labels})
    frame.index = draw(_index(n, labels))
    if draw(st.booleans()) and frame.shape[1] >= 2 and all(isinstance(c, str) for c in frame.columns):
        frame.columns = pd.MultiIndex.from_arrays([[c[:1] for c in frame.columns], list(frame.columns)], names=["top", None])
    if draw(st.booleans()):
        names: list[str | None] = [draw(NAMES) for _ in range(frame.columns.nlevels)]
        frame = frame.rename_axis(columns=names if len(names) > 1 else names[0])
    return frame


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames())
def test_generated_frames_give_the_table_from_pandas_gives(frame: pd.DataFrame) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            expected = pa.Table.from_pandas(frame, preserve_index=None)
    except (ValueError, TypeError, pa.ArrowException, UserWarning) as err:
        # Frames that pyarrow refuses or warns about: the fast path must not take them.
        event("refused by pyarrow")
        assert fast_float_columns(frame, min_rows=0) == {}, f"the fast path takes a frame pyarrow refuses: {err!r}"
        return
    fast = fast_float_columns(frame, min_rows=0)
    event("fast path" if fast else "ordinary path")
    if fast:
        _assert_same_table(_fast_table(frame), expected)
    _assert_same_table(from_pandas_table(frame, min_rows=0), expected)


# ---------------------------------------------------------------- through a store

ROWS = FAST_FLOAT_MIN_ROWS + 1234  # long enough for the fast path by default


def _big_frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "a": rng.random(ROWS),
            "b": rng.random(ROWS).astype("f4"),
            "gaps": np.where(rng.random(ROWS) < 0.1, np.nan, rng.random(ROWS)),
            "n": rng.integers(0, 1 << 40, ROWS),
            "sku": pd.array([f"{i % 997:06d}" for i in range(ROWS)], dtype="str"),
        }
    )
    return frame


def _stored_as(frame: pd.DataFrame, kind: bytes, extra: dict[bytes, bytes] | None = None) -> bytes:
    """The payload the codec stored before the fast path: from_pandas, tagged, as an IPC file."""
    return _ipc_bytes(_codecs._with_kind(pa.Table.from_pandas(frame, preserve_index=None), kind, extra))


STORED = {
    "RangeIndex": lambda f: f,
    "RangeIndex with a step": lambda f: f.set_axis(pd.RangeIndex(7, 7 + 2 * ROWS, 2, name="r")),
    "int index": lambda f: f.set_axis(pd.Index(np.arange(ROWS)[::-1], name="key")),
    "datetime index": lambda f: f.set_axis(pd.date_range("2024-01-01", periods=ROWS, freq="s", tz="UTC", name="t")),
    "MultiIndex": lambda f: f.set_axis(pd.MultiIndex.from_arrays([np.arange(ROWS) % 5, np.arange(ROWS)], names=["g", "i"])),
}


@pytest.mark.parametrize("shape", STORED.values(), ids=STORED.keys())
def test_large_frames_round_trip_and_store_the_same_bytes(brain: Brain, shape) -> None:
    frame = shape(_big_frame())
    assert sorted(fast_float_columns(frame)) == [0, 1]
    brain["df"] = frame
    pd.testing.assert_frame_equal(brain["df"], frame, check_exact=True, check_index_type=True, check_column_type=True)
    assert brain.metadata("df")["codec"] == "pandas"
    assert bytes(brain.view("df")) == _stored_as(frame, b"frame", _codecs._index_freq(pd, frame))


def test_a_large_series_round_trips_and_stores_the_same_bytes(brain: Brain) -> None:
    series = pd.Series(np.random.default_rng(2).random(ROWS), name="price", index=pd.Index(np.arange(ROWS), name="k"))
    brain["s"] = series
    pd.testing.assert_series_equal(brain["s"], series, check_exact=True, check_index_type=True)
    extra = {_codecs.SERIES_NAME_KEY: b'"price"'}
    assert bytes(brain.view("s")) == _stored_as(series.to_frame(name="__brain_series__"), b"series", extra)


def test_replacing_a_large_frame_keeps_readers_of_the_old_one(brain: Brain) -> None:
    first = _big_frame()
    brain["df"] = first
    held = brain["df"]
    second = first.assign(a=first["a"] + 1.0)
    brain["df"] = second
    pd.testing.assert_frame_equal(held, first, check_exact=True)
    pd.testing.assert_frame_equal(brain["df"], second, check_exact=True)


# ---------------------------------------------------------------- exact lengths

ARROW_OBJECTS = {
    "pyarrow Table": lambda: pa.table({"x": np.arange(50_000.0), "s": [f"v{i}" for i in range(50_000)]}),
    "chunked pyarrow Table": lambda: pa.concat_tables([pa.table({"x": np.arange(n, dtype="i4")}) for n in (10, 0, 70_001)]),
    "sliced pyarrow Table": lambda: pa.table({"x": np.arange(1e5), "s": [str(i) for i in range(100_000)]}).slice(3, 60_000),
    "empty pyarrow Table": lambda: pa.table({"a": pa.array([], pa.int32())}),
    "RecordBatch": lambda: pa.record_batch({"x": np.arange(3.0), "d": pa.array(["a", "b", "a"]).dictionary_encode()}),
    "pandas DataFrame": _big_frame,
    "small pandas DataFrame": lambda: pd.DataFrame({"x": [1.5, None], "c": pd.Categorical(["a", "b"])}),
    "pandas Series": lambda: pd.Series(np.arange(20_000.0), name="s"),
    "polars DataFrame": lambda: pl.DataFrame(
        {"x": np.arange(30_000.0), "s": [str(i) for i in range(30_000)], "n": [None, 1] * 15_000}
    ),
    "polars Series": lambda: pl.Series("v", np.arange(10_000, dtype="i8")),
}


@pytest.mark.parametrize("make", ARROW_OBJECTS.values(), ids=ARROW_OBJECTS.keys())
def test_arrow_writes_announce_the_exact_length(brain: Brain, make, monkeypatch: pytest.MonkeyPatch) -> None:
    announced: list[int | None] = []
    tables: list[Any] = []
    real_writer = brain.store.writer
    real_len = _codecs.ipc_file_len

    def writer(
        namespace: str, name: str, codec: str, description: str | None = None, expected_len: int | None = None
    ) -> Any:
        announced.append(expected_len)
        return real_writer(namespace, name, codec, description, expected_len)

    def ipc_len(table: Any) -> int:
        tables.append(table)
        return real_len(table)

    monkeypatch.setattr(brain, "_store", _StoreWith(brain.store, writer))
    monkeypatch.setattr(_codecs, "ipc_file_len", ipc_len)
    thing = make()
    brain["x"] = thing  # a mismatch would warn, and warnings are errors here
    assert len(announced) == 1 and announced[0] is not None
    assert len(brain.view("x")) == announced[0]
    assert bytes(brain.view("x")) == _ipc_bytes(tables[0])
    assert brain.metadata("x")["size"] == announced[0]


class _StoreWith:
    """A native Store whose ``writer`` is replaced (the native class cannot be patched)."""

    def __init__(self, store: Any, writer: Any) -> None:
        self._store = store
        self.writer = writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _numbered_table(rows: int, first: float) -> Any:
    return pa.table({"x": np.arange(first, first + rows), "s": [f"{i:08d}" for i in range(rows)]})


@pytest.mark.parametrize("rows", [50_000, 400_000], ids=["small", "over a recycled file"])
@pytest.mark.parametrize("error", [-100, +4096], ids=["too short", "too long"])
def test_a_wrong_announced_length_warns_but_stores_the_object(
    brain: Brain, backend: str, rows: int, error: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _numbered_table(rows, 0.0)
    brain["t"] = old
    brain["t"] = old  # a large replaced object's file is kept for reuse (in shared memory)
    held = brain["t"]
    if rows > 100_000 and backend == "shm":
        assert brain.store.usage()["recycled"] > 0
    new = _numbered_table(rows, 1.0)
    real_len = _codecs.ipc_file_len
    monkeypatch.setattr(_codecs, "ipc_file_len", lambda t: real_len(t) + error)
    with pytest.warns(RuntimeWarning, match="were computed"):
        brain["t"] = new
    assert brain["t"].equals(new)
    assert held.equals(old)
    assert len(brain.view("t")) == real_len(_codecs._with_kind(new, b"table"))


def test_a_full_store_refuses_a_frame_before_writing_it(store_url: str) -> None:
    brain = Brain(url=store_url, capacity=1_000_000)
    frame = _big_frame()
    length = ipc_file_len(_codecs._with_kind(pa.Table.from_pandas(frame, preserve_index=None), b"frame"))
    with pytest.raises(BrainStoreFullError) as info:
        brain["df"] = frame
    assert info.value.needed >= length
    assert brain.names() == [] and brain.used() == 0
    brain["small"] = frame.head(10)
    pd.testing.assert_frame_equal(brain["small"], frame.head(10), check_exact=True)


def test_the_length_of_a_file_is_known_before_it_is_written() -> None:
    table = pa.table({"x": np.arange(1000.0), "t": pa.array([dt.date(2024, 1, 1)] * 1000)})
    assert ipc_file_len(table) == len(_ipc_bytes(table))
    batch = table.to_batches()[0]
    assert ipc_file_len(batch) == len(_ipc_bytes(batch))


@pytest.mark.parametrize("group", [_codecs._GATHER_BYTES, (1 << 20) + 7], ids=["one group", "groups of 1 MiB"])
def test_a_wide_table_is_copied_as_one_and_stores_pyarrow_s_bytes(
    brain: Brain, group: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 240 columns of 80 KB: hundreds of small buffers adding up to a copy
    # large enough to be split across cores; in smaller groups, each group
    # starts mid-chunk.
    monkeypatch.setattr(_codecs, "_GATHER_BYTES", group)
    rng = np.random.default_rng(5)
    table = pa.table({f"c{i}": rng.random(10_000) for i in range(240)})
    assert ipc_file_len(table) >= 16 << 20
    brain["wide"] = table
    assert bytes(brain.view("wide")) == _ipc_bytes(_codecs._with_kind(table, b"table"))
    assert brain.get("wide", verify=True).equals(table)
    # An append writes its rows the same way, as a part of the frame.
    brain.append("wide", table)
    assert brain.get("wide", verify=True).equals(pa.concat_tables([table, table]))


def test_writelines_copies_every_buffer_in_order_when_called(brain: Brain) -> None:
    rng = np.random.default_rng(6)
    reused = bytearray(b"first")
    # Each below the size a piece is split at by itself, together above it.
    pieces: list[Any] = [b"head", reused, memoryview(b"x" * 100_000), rng.random(1_000_000), b"", rng.random(500_000), np.arange(7)]
    expected = b"".join(bytes(memoryview(p).cast("B")) for p in pieces)
    writer = brain.store.writer(brain.namespace, "lines", "raw", None, len(expected))
    writer.writelines(iter(pieces))
    reused[:] = b"later"  # a buffer reused after the call: what was stored stays (writelines copies, never defers)
    writer.writelines([b"tail"])
    assert writer.tell() == len(expected) + 4
    writer.commit()
    assert bytes(brain.get("lines", verify=True)) == expected + b"tail"


def test_writelines_refuses_what_is_not_a_buffer_and_writes_nothing(brain: Brain) -> None:
    writer = brain.store.writer(brain.namespace, "lines", "raw")
    with pytest.raises(TypeError, match="export a buffer"):
        writer.writelines([b"fine", "a str"])
    assert writer.tell() == 0
    writer.abort()
    assert "lines" not in brain
