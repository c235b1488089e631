"""Objects come back exactly as stored; arrays and tables zero-copy and read-only."""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brain import Brain
from brain.exceptions import BrainCodecError
from test_interop_codecs import ARRAYS as EVERY_DTYPE

from _helpers import (
    MAPPED_MIN,
    assert_array_zero_copy,
    assert_arrow_zero_copy,
    brain_object_of,
)

N = 100_000  # elements per test array: every array is larger than MAPPED_MIN


def _numbers(dtype: str) -> np.ndarray:
    return np.arange(N).astype(dtype)


def _structured() -> np.ndarray:
    arr = np.zeros(N, dtype=[("id", "<i4"), ("xy", ">f8", (2,)), ("tag", "S3"), ("when", "M8[ms]")])
    arr["id"] = np.arange(N)
    arr["xy"][:, 0] = np.linspace(0, 1, N)
    arr["xy"][:, 1] = -np.arange(N)
    arr["tag"] = np.array([b"a", b"bc", b"def"])[np.arange(N) % 3]
    arr["when"] = np.arange(N).astype("M8[ms]")
    return arr


ARRAYS = {
    "bool": lambda: np.arange(N) % 3 == 0,
    "int8": lambda: _numbers("i1"),
    "int16": lambda: _numbers("i2"),
    "int32": lambda: _numbers("i4"),
    "int64": lambda: _numbers("i8") - N // 2,
    "uint8": lambda: _numbers("u1"),
    "uint16": lambda: _numbers("u2"),
    "uint32": lambda: _numbers("u4"),
    "uint64": lambda: _numbers("u8") + np.uint64(2**63),
    "float16": lambda: (np.arange(N) % 2048).astype("f2") / 4,
    "float32": lambda: np.linspace(-1, 1, N, dtype="f4"),
    "float64 with nan and inf": lambda: np.concatenate([[np.nan, np.inf, -np.inf, -0.0], np.linspace(0, 1e300, N)]),
    "big-endian float64": lambda: np.arange(N, dtype=">f8"),
    "big-endian int32": lambda: np.arange(N, dtype=">i4"),
    "longdouble": lambda: np.arange(N, dtype=np.longdouble) / 3,
    "complex64": lambda: (np.arange(N) + 1j * np.arange(N)[::-1]).astype("c8"),
    "complex128": lambda: np.arange(N) * (1 - 2j),
    "datetime64[ns]": lambda: np.arange(N).astype("m8[ns]") + np.datetime64("2024-01-01", "ns"),
    "datetime64[D] with NaT": lambda: np.concatenate([np.array(["NaT"], "M8[D]"), np.arange(N).astype("M8[D]")]),
    "datetime64[s]": lambda: np.arange(N).astype("M8[s]"),
    "timedelta64[us]": lambda: np.arange(N).astype("m8[us]"),
    "timedelta64[m] with NaT": lambda: np.concatenate([np.arange(N).astype("m8[m]"), np.array(["NaT"], "m8[m]")]),
    "bytes S7": lambda: np.char.encode(np.char.add("b", np.arange(N).astype("U6")), "ascii").astype("S7"),
    "str U5": lambda: np.char.add("é", (np.arange(N) % 10_000).astype("U4")),
    "structured": _structured,
    "void V16": lambda: np.arange(2 * N, dtype="i8").view("V16"),
    "3-d": lambda: np.arange(N * 6, dtype="i4").reshape(10, 60, N // 10 * 6 // 60),
    "fortran order": lambda: np.asfortranarray(np.arange(N, dtype="f8").reshape(400, N // 400)),
    "fortran 3-d": lambda: np.asfortranarray(np.arange(N, dtype="i8").reshape(10, 100, N // 1000)),
}


@pytest.mark.parametrize("make", ARRAYS.values(), ids=ARRAYS.keys())
def test_numpy_arrays_round_trip_zero_copy_and_read_only(brain: Brain, make) -> None:
    arr = make()
    assert arr.nbytes >= MAPPED_MIN
    brain["arr"] = arr
    got = brain["arr"]
    assert type(got) is np.ndarray
    assert got.dtype == arr.dtype and str(got.dtype) == str(arr.dtype)
    assert got.shape == arr.shape
    assert got.tobytes(order="A") == arr.tobytes(order="A")
    np.testing.assert_array_equal(got, arr)
    assert got.flags.f_contiguous == arr.flags.f_contiguous
    assert got.flags.c_contiguous == arr.flags.c_contiguous
    assert got.flags.writeable is False
    with pytest.raises(ValueError):
        got[(0,) * got.ndim] = got[(0,) * got.ndim]
    with pytest.raises(ValueError):
        got.setflags(write=True)
    assert_array_zero_copy(brain, "arr", got)
    assert brain.metadata("arr")["codec"] == "ndarray"


SLICES = {
    "every other row": lambda a: a[::2],
    "a column": lambda a: a[:, 3],
    "reversed": lambda a: a[::-1, ::-1],
    "transposed window": lambda a: a[10:, 5:40:3].T,
}


@pytest.mark.parametrize("cut", SLICES.values(), ids=SLICES.keys())
def test_non_contiguous_slices_round_trip(brain: Brain, cut) -> None:
    base = np.arange(N * 4, dtype="f8").reshape(N // 10, 40)
    view = cut(base)
    assert not (view.flags.c_contiguous and view.flags.f_contiguous and view.ndim > 1)
    brain["s"] = view
    got = brain["s"]
    assert got.shape == view.shape and got.dtype == view.dtype
    np.testing.assert_array_equal(got, view)
    assert got.flags.writeable is False
    assert_array_zero_copy(brain, "s", got)


SMALL = {
    "0-d float": lambda: np.array(3.25),
    "0-d datetime": lambda: np.array(np.datetime64("2021-06-01T12:00", "m")),
    "0-d structured": lambda: np.zeros((), dtype=[("a", "i2"), ("b", "U2")]),
    "empty 1-d": lambda: np.array([], dtype="f4"),
    "empty 2-d": lambda: np.empty((0, 5), dtype="i8"),
    "empty 3-d fortran": lambda: np.asfortranarray(np.empty((3, 0, 2), dtype="c16")),
    "one element": lambda: np.array([7], dtype="u2"),
    "small 2-d": lambda: np.arange(6).reshape(2, 3),
}


@pytest.mark.parametrize("make", SMALL.values(), ids=SMALL.keys())
def test_small_and_empty_arrays_round_trip_read_only(brain: Brain, make) -> None:
    arr = make()
    brain["a"] = arr
    got = brain["a"]
    assert type(got) is np.ndarray
    assert got.dtype == arr.dtype and got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)
    assert got.flags.writeable is False
    with pytest.raises(ValueError):
        got[...] = 0
    if arr.size:
        # Small objects are read into this process's memory, once: the
        # array is a view of that Object's buffer, not another copy.
        obj = brain_object_of(got)
        assert obj is not None, "the array does not look into a brain Object"
        address = got.__array_interface__["data"][0]
        assert obj.address <= address and address + got.nbytes <= obj.address + len(obj)


@pytest.mark.parametrize("kind", sorted(EVERY_DTYPE))
def test_every_kind_of_dtype_round_trips(brain: Brain, kind: str) -> None:
    """Structured dtypes (nested, titled, padded, with sub-arrays), dates,
    complex numbers, strings, Fortran order, zero-size and 0-d arrays."""
    arr = EVERY_DTYPE[kind]
    brain[kind] = arr
    back = brain[kind]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.flags.writeable is False
    assert back.tobytes(order="A") == arr.tobytes(order="A")


def test_an_array_outlives_its_name(brain: Brain) -> None:
    brain["a"] = np.arange(N, dtype="i8")
    got = brain["a"]
    brain["a"] = np.zeros(3)
    del brain["a"]
    assert got[-1] == N - 1 and int(got.sum()) == N * (N - 1) // 2


# ---------------------------------------------------------------- pyarrow


def _arrow_table() -> pa.Table:
    n = 20_000
    return pa.table(
        {
            "i": pa.array(np.arange(n)),
            "f": pa.array(np.linspace(0, 1, n)),
            "s": pa.array([f"row {i}" if i % 7 else None for i in range(n)]),
            "b": pa.array(np.arange(n) % 2 == 0),
            "ts": pa.array(np.arange(n).astype("M8[us]"), pa.timestamp("us", tz="UTC")),
            "l": pa.array([[i, i + 1] for i in range(n)]),
            "d": pa.array(["x", "y", "z", "x"] * (n // 4)).dictionary_encode(),
        },
        metadata={b"owner": b"tests"},
    )


def test_arrow_table_round_trips_zero_copy(brain: Brain) -> None:
    table = _arrow_table()
    brain["t"] = table
    got = brain["t"]
    assert isinstance(got, pa.Table)
    assert got.equals(table, check_metadata=True)
    assert_arrow_zero_copy(brain, "t", got)
    assert brain.metadata("t")["codec"] == "arrow"
    as_arrow = brain.get("t", as_arrow=True)
    assert isinstance(as_arrow, pa.Table) and as_arrow.equals(table)


def test_arrow_record_batch_round_trips_zero_copy(brain: Brain) -> None:
    batch = _arrow_table().to_batches()[0]
    brain["rb"] = batch
    got = brain["rb"]
    assert isinstance(got, pa.RecordBatch)
    assert got.equals(batch)
    assert_arrow_zero_copy(brain, "rb", got)


def test_a_chunked_arrow_table_round_trips(brain: Brain) -> None:
    part = _arrow_table()
    table = pa.concat_tables([part, part.slice(5, 100)])
    brain["t"] = table
    assert brain["t"].equals(table)


def test_an_empty_arrow_table_round_trips(brain: Brain) -> None:
    table = pa.table({"a": pa.array([], pa.int32()), "b": pa.array([], pa.string())})
    brain["t"] = table
    assert brain["t"].equals(table)


# ---------------------------------------------------------------- pandas


def _pandas_frame() -> pd.DataFrame:
    n = 6
    return pd.DataFrame(
        {
            "int": np.arange(n),
            "float": np.linspace(0, 1, n),
            "text": [f"t{i}" for i in range(n)],
            "category": pd.Categorical(list("abcabc"), categories=list("cba"), ordered=True),
            "naive time": pd.date_range("2024-03-01", periods=n, freq="h"),
            "paris time": pd.date_range("2024-03-30", periods=n, freq="D", tz="Europe/Paris"),
            "delta": pd.to_timedelta(np.arange(n), unit="s"),
            "Int64": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
            "boolean": pd.array([True, False, None, True, None, False], dtype="boolean"),
            "string": pd.array(["x", None, "z", "", "é", "名"], dtype="string"),
            "Float64": pd.array([0.5, None, 1.5, 2.5, 3.5, None], dtype="Float64"),
        }
    )


INDEXES = {
    "RangeIndex": lambda f: f,
    "RangeIndex with start, step and name": lambda f: f.set_axis(pd.RangeIndex(10, 10 + 3 * len(f), 3, name="r")),
    "named index": lambda f: f.set_index(pd.Index(list("uvwxyz"), name="letters")),
    "datetime index": lambda f: f.set_index(pd.DatetimeIndex(pd.date_range("2020", periods=len(f), tz="UTC"), name="day")),
    "MultiIndex": lambda f: f.set_index(
        pd.MultiIndex.from_arrays([list("aabbcc"), [1, 2, 1, 2, 1, 2]], names=["outer", "inner"])
    ),
    "named columns": lambda f: f.rename_axis(columns="fields"),
    "MultiIndex columns": lambda f: f[["int", "float"]].set_axis(
        pd.MultiIndex.from_tuples([("x", "a"), ("x", "b")], names=["top", "sub"]), axis=1
    ),
}


@pytest.mark.parametrize("shape", INDEXES.values(), ids=INDEXES.keys())
def test_pandas_dataframes_round_trip(brain: Brain, shape) -> None:
    frame = shape(_pandas_frame())
    brain["df"] = frame
    got = brain["df"]
    pd.testing.assert_frame_equal(got, frame, check_exact=True, check_index_type=True, check_column_type=True)
    assert brain.metadata("df")["codec"] == "pandas"
    table = brain.get("df", as_arrow=True)
    assert isinstance(table, pa.Table)
    assert table.num_rows == len(frame)
    assert table.column("int" if "int" in frame else 0).to_pylist() == list(frame.iloc[:, 0])


LABELS = {
    "int RangeIndex columns": lambda: pd.DataFrame(np.arange(12.0).reshape(4, 3)),
    "int columns": lambda: pd.DataFrame(np.arange(12).reshape(4, 3), columns=[30, 10, 20]),
    "float columns": lambda: pd.DataFrame([[1, 2]], columns=[0.5, 1.5]),
    "mixed str and int columns": lambda: pd.DataFrame({"a": [1, 2], 7: [3, 4]}),
    "bool columns": lambda: pd.DataFrame([[1, 2]], columns=[True, False]),
    "tuple columns": lambda: pd.DataFrame([[1, 2]], columns=[("a", 1), ("b", 2)]),
    "None column": lambda: pd.DataFrame({None: [1, 2]}),
    "duplicate columns": lambda: pd.DataFrame([[1, 2]], columns=["a", "a"]),
    "datetime columns": lambda: pd.DataFrame([[1, 2]], columns=pd.to_datetime(["2020-01-01", "2020-01-02"])),
    "mixed object index": lambda: pd.DataFrame({"a": [1, 2]}, index=pd.Index([1, "x"], dtype=object)),
    "no columns": lambda: pd.DataFrame(index=pd.RangeIndex(3)),
    "empty": lambda: pd.DataFrame(),
}


@pytest.mark.parametrize("make", LABELS.values(), ids=LABELS.keys())
def test_pandas_frames_with_any_labels_round_trip_exactly(brain: Brain, make) -> None:
    # pyarrow alone would turn some of these labels into strings (with a
    # warning, an error here) or even change them ([True, False] comes back
    # [True, True]); brain must give back the very same frame.
    frame = make()
    brain["df"] = frame
    pd.testing.assert_frame_equal(brain["df"], frame, check_exact=True, check_index_type=True, check_column_type=True)


def test_a_pandas_series_read_as_arrow_names_its_column_as_pyarrow_would(brain: Brain) -> None:
    for name, column in (("price", "price"), (None, "0"), (7, "7")):
        series = pd.Series([1.5, 2.5], name=name)
        brain["s"] = series
        table = brain.get("s", as_arrow=True)
        assert table.column_names == pa.Table.from_pandas(series.to_frame(), preserve_index=False).column_names
        assert table.column_names == [column]
        assert table.column(0).to_pylist() == [1.5, 2.5]
        assert brain["s"].name == name


def test_pandas_series_with_a_tuple_name_round_trips(brain: Brain) -> None:
    series = pd.Series([1, 2], name=("a", 1))
    brain["s"] = series
    got = brain["s"]
    assert got.name == ("a", 1)
    pd.testing.assert_series_equal(got, series, check_exact=True)


def test_pandas_string_column_and_large_frame(brain: Brain) -> None:
    n = 50_000
    frame = pd.DataFrame({"s": [f"value-{i % 997}" for i in range(n)], "x": np.arange(n, dtype="f8")})
    brain["df"] = frame
    pd.testing.assert_frame_equal(brain["df"], frame, check_exact=True)
    table = brain.get("df", as_arrow=True)
    assert table.column_names[:2] == ["s", "x"]
    assert_arrow_zero_copy(brain, "df", table)


SERIES = {
    "unnamed": lambda: pd.Series([1.5, 2.5, None]),
    "named": lambda: pd.Series([1, 2, 3], name="counts", index=pd.Index(["a", "b", "c"], name="key")),
    "int-named": lambda: pd.Series(["x", "y"], name=0),
    "categorical": lambda: pd.Series(pd.Categorical(["lo", "hi", "lo"]), name="level"),
    "tz datetimes": lambda: pd.Series(pd.date_range("2024-10-27", periods=4, freq="h", tz="Europe/London")),
    "nullable Int64": lambda: pd.Series(pd.array([None, 2], dtype="Int64"), name="n"),
    "MultiIndex": lambda: pd.Series(
        [1, 2, 3, 4], index=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "j"]), name="v"
    ),
}


@pytest.mark.parametrize("make", SERIES.values(), ids=SERIES.keys())
def test_pandas_series_round_trip(brain: Brain, make) -> None:
    series = make()
    brain["s"] = series
    got = brain["s"]
    assert isinstance(got, pd.Series)
    pd.testing.assert_series_equal(got, series, check_exact=True, check_index_type=True)


def test_mixed_type_object_column_falls_back_to_pickle(brain: Brain) -> None:
    frame = pd.DataFrame({"mixed": [1, "two", 3.0, None, b"five", (6,)], "n": range(6)})
    brain["df"] = frame
    assert brain.metadata("df")["codec"] == "pickle5"
    pd.testing.assert_frame_equal(brain["df"], frame, check_exact=True)
    mixed_series = pd.Series([1, "a", dt.date(2020, 1, 1)], name="m")
    brain["s"] = mixed_series
    pd.testing.assert_series_equal(brain["s"], mixed_series)


AWARE = dt.datetime(2020, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=3)))
NAIVE = dt.datetime(2020, 6, 1)
# Object columns Arrow would store as one type, changing some values.
CHANGED_BY_ARROW = {
    "bytes and str": [b"x", "y"],
    "str and bytes": ["y", b"x"],
    "aware then naive datetimes": [AWARE, NAIVE],
    "naive then aware datetimes": [NAIVE, AWARE],
    "datetimes of two zones": [AWARE, AWARE.astimezone(dt.timezone.utc)],
    "ints and floats": [1, 2.5],
    "ints past 64 bits": [2**63, 1],
    "ints past 64 bits, negative": [-(2**70), 1],
    "a datetime among dates": [dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 5)],
    "times with a zone": [dt.time(5, tzinfo=dt.timezone.utc), dt.time(6, tzinfo=dt.timezone.utc)],
    "timestamps with nanoseconds": [pd.Timestamp("2020-01-01 00:00:00.000000001"), pd.Timestamp("2020-01-02")],
    "numpy ints": [np.int64(1), np.int64(2)],
    "numpy floats beside floats": [np.float64(1.5), 2.5],
    "numpy bools": [np.bool_(True), np.bool_(False)],
    "None beside NaN": ["a", None, float("nan")],
    "NA beside NaN": ["a", pd.NA, float("nan")],
    "a numpy NaN": ["a", np.float64("nan")],
}


@pytest.mark.parametrize("values", CHANGED_BY_ARROW.values(), ids=CHANGED_BY_ARROW.keys())
def test_object_columns_arrow_would_change_are_pickled_exactly(brain: Brain, values: list[Any]) -> None:
    frame = pd.DataFrame({"a": pd.Series(values, dtype=object), "n": range(len(values))})
    brain["df"] = frame
    assert brain.metadata("df")["codec"] == "pickle5"
    back = brain["df"]
    assert [(type(v), str(v)) for v in back["a"]] == [(type(v), str(v)) for v in values]
    assert [getattr(v, "tzinfo", None) for v in back["a"]] == [getattr(v, "tzinfo", None) for v in values]
    # As an index too.
    indexed = pd.DataFrame({"n": range(len(values))}, index=pd.Index(values, dtype=object))
    brain["ix"] = indexed
    assert [(type(v), str(v)) for v in brain["ix"].index] == [(type(v), str(v)) for v in values]
    # A column assigned to a stored frame cannot be pickled alone: refused.
    brain["f"] = pd.DataFrame({"n": range(len(values))})
    with pytest.raises(TypeError, match="Arrow cannot store exactly"):
        brain.assign("f", a=pd.Series(values, dtype=object))
    pd.testing.assert_frame_equal(brain["f"], pd.DataFrame({"n": range(len(values))}))


MISSING = {"NaN": float("nan"), "NA": pd.NA, "NaT": pd.NaT, "None": None}


def _same_objects(got: Any, values: list[Any]) -> bool:
    """Each value the same object or an equal one of the same type, NaN as NaN."""
    return len(got) == len(values) and all(
        type(g) is type(v) and (g is v or g == v or (g != g and v != v)) for g, v in zip(got, values)
    )


@pytest.mark.parametrize("marker", MISSING.values(), ids=MISSING.keys())
def test_object_columns_keep_their_missing_marker(brain: Brain, marker: Any) -> None:
    # Arrow stores each marker as a null, which would come back as None:
    # pandas' own read_csv gives NaN in a column of strings.
    columns = {"d": [dt.date(2020, 1, 1), marker, dt.date(2021, 1, 1)]}
    if marker is not pd.NaT:  # which pandas infers as mixed among strings or numbers
        columns.update(s=["a", marker, "c"], i=[1, 2, marker])
    brain["df"] = pd.DataFrame({column: pd.Series(values, dtype=object) for column, values in columns.items()})
    assert brain.metadata("df")["codec"] == "pandas"
    back = brain["df"]
    for column, values in columns.items():
        assert back[column].dtype == object
        assert _same_objects(list(back[column]), values), (column, list(back[column]))
        assert _same_objects(list(brain.get("df", columns=[column])[column]), values)
    # A column added in place keeps its own.
    added = [dt.date(2022, 1, 1), dt.date(2023, 1, 1), marker]
    brain.assign("df", t=pd.Series(added, dtype=object))
    assert _same_objects(list(brain["df"]["t"]), added)
    assert _same_objects(list(brain["df"]["d"]), columns["d"])


class _TaggedFrame(pd.DataFrame):
    """A subclass of a frame, with an attribute of its own."""

    _metadata = ["tag"]

    @property
    def _constructor(self) -> type[_TaggedFrame]:
        return _TaggedFrame


def test_a_subclass_of_a_frame_keeps_its_class(brain: Brain) -> None:
    frame = _TaggedFrame({"a": [1, 2]})
    frame.tag = "v1"
    brain["t"] = frame
    back = brain["t"]
    assert type(back) is _TaggedFrame and back.tag == "v1"
    pd.testing.assert_frame_equal(back, frame)


def test_a_pickled_frame_is_not_handed_back_as_another_librarys(brain: Brain) -> None:
    # Pickled because Arrow cannot hold its mixed column exactly.
    frame = pd.DataFrame({"id": [1, 2], "note": [1, "x"]})
    brain["f"] = frame
    assert brain.metadata("f")["codec"] == "pickle5"
    pd.testing.assert_frame_equal(brain.get("f", as_pandas=True), frame)
    for library in ("arrow", "polars"):
        with pytest.raises(BrainCodecError, match=f"reads back in pandas only: read it without as_{library}=True"):
            brain.get("f", **{f"as_{library}": True})
        with pytest.raises(BrainCodecError, match="pandas only"):
            brain.get("f", columns=["id"], **{f"as_{library}": True})
    # Other pickled values ignore the library, as documented.
    brain["d"] = {"x": 1}
    assert brain.get("d", as_arrow=True) == {"x": 1}


def test_object_columns_of_one_type_stay_arrow(brain: Brain) -> None:
    frame = pd.DataFrame(
        {
            "s": pd.Series(["a", None, "c"], dtype=object),
            "b": pd.Series([b"a", b"b", None], dtype=object),
            "d": pd.Series([NAIVE, None, NAIVE], dtype=object),
            "z": pd.Series([AWARE, AWARE, None], dtype=object),
            "date": pd.Series([dt.date(2020, 1, 1), None, dt.date(2021, 1, 1)], dtype=object),
        }
    )
    brain["df"] = frame
    assert brain.metadata("df")["codec"] == "pandas"
    pd.testing.assert_frame_equal(brain["df"], frame, check_exact=True)


def test_dictionary_columns_of_chunks_with_their_own_dictionaries_are_stored(brain: Brain, tmp_path: Path) -> None:
    # pa.concat_tables of categoricals: one dictionary a chunk.
    table = pa.concat_tables(
        [pa.table({"s": pa.array(["a", "a"]).dictionary_encode()}), pa.table({"s": pa.array(["b"]).dictionary_encode()})]
    )
    brain["t"] = table
    assert brain["t"].column("s").to_pylist() == ["a", "a", "b"]
    # A Parquet file of several row groups read with read_dictionary.
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"s": ["a", "b", "c", "d"]}), path, row_group_size=2)
    brain["q"] = pq.read_table(path, read_dictionary=["s"])
    assert brain["q"].column("s").to_pylist() == ["a", "b", "c", "d"]
    # pd.concat of dictionary columns, then appended to.
    dictionary = pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string()))
    frame = pd.concat(
        [pd.DataFrame({"s": pd.array(["a"], dtype=dictionary)}), pd.DataFrame({"s": pd.array(["b"], dtype=dictionary)})],
        ignore_index=True,
    )
    brain["p"] = frame
    assert brain["p"]["s"].tolist() == ["a", "b"]
    brain.append("t", table)
    assert brain["t"].column("s").to_pylist() == ["a", "a", "b"] * 2


def test_tables_of_canonical_extension_types_read_as_pandas(brain: Brain) -> None:
    tensor = pa.fixed_shape_tensor(pa.int32(), [2, 2])
    columns = {
        "json": pa.array(['{"k": 1}', None], pa.json_()),
        "bool8": pa.ExtensionArray.from_storage(pa.bool8(), pa.array([1, 0], pa.int8())),
        "tensor": pa.ExtensionArray.from_storage(tensor, pa.array([[1, 2, 3, 4], [5, 6, 7, 8]], pa.list_(pa.int32(), 4))),
        "opaque": pa.ExtensionArray.from_storage(pa.opaque(pa.binary(), "t", "v"), pa.array([b"a", b"b"])),
    }
    for name, column in columns.items():
        table = pa.table({"x": column, "n": [1, 2]})
        brain[name] = table
        pd.testing.assert_frame_equal(brain.get(name, as_pandas=True), table.to_pandas())


def test_what_pandas_keeps_beside_the_values_comes_back(brain: Brain) -> None:
    """Index names that are not str, attrs JSON would change, and a frame
    refusing duplicate labels: Arrow would lose them, so they are pickled."""
    named = pd.DataFrame({"a": [1]}, index=pd.Index([1], name=5))
    with_set = pd.DataFrame({"a": [1]})
    with_set.attrs["x"] = {1, 2}
    with_tuple = pd.DataFrame({"a": [1]})
    with_tuple.attrs["x"] = (1, 2)
    unique = pd.DataFrame({"a": [1]}).set_flags(allows_duplicate_labels=False)
    series = pd.Series([1], index=pd.Index([1], name=5), name="s")
    for thing in (named, with_set, with_tuple, unique, series):
        brain["x"] = thing
        back = brain["x"]
        assert brain.metadata("x")["codec"] == "pickle5"
        assert list(back.index.names) == list(thing.index.names)
        assert back.attrs == thing.attrs
        assert back.flags.allows_duplicate_labels == thing.flags.allows_duplicate_labels
    # attrs that JSON keeps stay with a frame stored as Arrow.
    kept = pd.DataFrame({"a": [1]})
    kept.attrs["source"] = {"k": [1, 2]}
    brain["kept"] = kept
    assert brain.metadata("kept")["codec"] == "pandas"
    assert brain["kept"].attrs == kept.attrs


def test_a_nullable_index_comes_back_exactly(brain: Brain) -> None:
    for index in [
        pd.Index(pd.array([2**53 + 1, None, 3], dtype="Int64"), name="id"),
        pd.Index(pd.array([True, None, False], dtype="boolean")),
        pd.MultiIndex.from_arrays([pd.array([2**60, 1, None], dtype="Int64"), ["a", "b", "c"]]),
    ]:
        frame = pd.DataFrame({"v": [1, 2, 3]}, index=index)
        brain["f"] = frame
        pd.testing.assert_frame_equal(brain["f"], frame, check_exact=True)


def test_a_frame_without_rows_keeps_its_categories(brain: Brain) -> None:
    frame = pd.DataFrame(
        {"c": pd.Categorical(["a", "b"], categories=["a", "b", "z"], ordered=True), "n": [1, 2]}
    )
    empty = frame[frame["c"] == "nothing"]
    brain["e"] = empty
    pd.testing.assert_frame_equal(brain["e"], empty)
    assert list(brain["e"]["c"].cat.categories) == ["a", "b", "z"]
    assert brain.get("e", columns=["c"])["c"].cat.categories.tolist() == ["a", "b", "z"]


def test_pandas_get_as_arrow_from_an_arrow_stored_frame(brain: Brain) -> None:
    brain["df"] = pd.DataFrame({"a": [1, 2]})
    table = brain.get("df", as_arrow=True)
    assert isinstance(table, pa.Table)
    assert table.column("a").to_pylist() == [1, 2]
    assert b"brain.kind" not in (table.schema.metadata or {})


# ---------------------------------------------------------------- polars


def test_polars_dataframe_round_trips(brain: Brain) -> None:
    frame = pl.DataFrame(
        {
            "i": [1, 2, None],
            "f": [0.5, None, 2.5],
            "s": ["a", None, "名"],
            "c": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
            "t": pl.datetime_range(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 3), "1d", eager=True, time_zone="Asia/Tokyo"),
            "l": [[1], [], [2, 3]],
            "st": [{"a": 1}, {"a": 2}, {"a": None}],
        }
    )
    brain["pl"] = frame
    got = brain["pl"]
    assert isinstance(got, pl.DataFrame)
    assert got.equals(frame)
    assert got.schema == frame.schema
    assert brain.metadata("pl")["codec"] == "polars"
    assert isinstance(brain.get("pl", as_arrow=True), pa.Table)


def test_polars_series_round_trips(brain: Brain) -> None:
    series = pl.Series("values", np.arange(20_000, dtype="i8"))
    brain["ps"] = series
    got = brain["ps"]
    assert isinstance(got, pl.Series)
    assert got.name == "values"
    assert got.equals(series)
    assert got.dtype == series.dtype


def test_large_polars_frame_round_trips(brain: Brain) -> None:
    frame = pl.DataFrame({"x": np.arange(100_000, dtype="f8"), "s": [str(i % 100) for i in range(100_000)]})
    brain["pl"] = frame
    assert brain["pl"].equals(frame)


# ---------------------------------------------------------------- plain Python


PLAIN = {
    "str": "a text object",
    "empty str": "",
    "unicode str": "名前 ✓ \u0000 \U0001f600",
    "bytes": b"\x00\x01\xffraw",
    "empty bytes": b"",
    "int": 42,
    "big int": 2**200,
    "negative int": -7,
    "float": 3.141592653589793,
    "inf": float("inf"),
    "bool True": True,
    "bool False": False,
    "None": None,
    "dict": {"a": 1, "b": [1, 2], 3: "three"},
    "list": [1, "two", 3.0, None, [4]],
    "tuple": (1, ("nested",), b"x"),
    "set": {1, 2, "three"},
    "frozenset": frozenset({1, 2}),
    "complex": 1 + 2j,
    "decimal": decimal.Decimal("1.10"),
    "fraction": fractions.Fraction(1, 3),
    "date": dt.date(2024, 2, 29),
    "bytearray": bytearray(b"mutable"),
}


@pytest.mark.parametrize("value", PLAIN.values(), ids=PLAIN.keys())
def test_plain_python_objects_round_trip(brain: Brain, value) -> None:
    brain["v"] = value
    got = brain["v"]
    assert type(got) is type(value)
    assert got == value


@pytest.mark.parametrize(
    "size",
    # Below and at the size from which the copy runs without the GIL, and
    # at the size from which its pages are faulted in first.
    [(64 << 10) - 1, 64 << 10, (1 << 20) + 3, (32 << 20) + 5],
    ids=["64 KiB - 1", "64 KiB", "1 MiB + 3", "32 MiB + 5"],
)
def test_large_bytes_come_back_whole(brain: Brain, size: int) -> None:
    value = np.random.default_rng(size).bytes(size)
    brain["v"] = value
    got = brain["v"]
    assert type(got) is bytes
    assert got == value
    brain["v"] = value[::-1]
    assert brain["v"] == value[::-1]


def test_nan_round_trips(brain: Brain) -> None:
    brain["v"] = float("nan")
    got = brain["v"]
    assert isinstance(got, float) and got != got


def test_str_and_bytes_use_their_own_codecs(brain: Brain) -> None:
    brain["s"] = "text"
    brain["b"] = b"bytes"
    brain["i"] = 1
    assert brain.metadata("s")["codec"] == "text"
    assert brain.metadata("b")["codec"] == "raw"
    assert brain.metadata("i")["codec"] == "pickle5"
    assert bytes(brain.view("b")) == b"bytes"
    assert bytes(brain.view("s")) == b"text"


def test_nested_containers_with_numpy_arrays_are_zero_copy(brain: Brain) -> None:
    big = np.arange(N, dtype="f8")
    matrix = np.arange(N, dtype="i4").reshape(100, N // 100)
    value = {
        "big": big,
        "inner": {"matrix": matrix, "list": [np.ones(N // 2, dtype="u2"), "text"]},
        "fortran": np.asfortranarray(matrix),
        "scalar": 1,
    }
    brain["nest"] = value
    got = brain["nest"]
    assert got.keys() == value.keys() and got["scalar"] == 1
    arrays = [
        (got["big"], big),
        (got["inner"]["matrix"], matrix),
        (got["inner"]["list"][0], value["inner"]["list"][0]),
        (got["fortran"], value["fortran"]),
    ]
    assert got["inner"]["list"][1] == "text"
    for back, original in arrays:
        assert back.dtype == original.dtype
        np.testing.assert_array_equal(back, original)
        assert back.flags.writeable is False
        with pytest.raises(ValueError):
            back.flat[0] = 1
        assert_array_zero_copy(brain, "nest", back)


def test_nested_non_contiguous_arrays_round_trip(brain: Brain) -> None:
    value = {"strided": np.arange(N, dtype="f8")[::3], "list": [np.arange(10)[::2]]}
    brain["v"] = value
    got = brain["v"]
    np.testing.assert_array_equal(got["strided"], value["strided"])
    np.testing.assert_array_equal(got["list"][0], value["list"][0])


def test_object_dtype_arrays_are_pickled(brain: Brain) -> None:
    arr = np.array([1, "a", None, [2]], dtype=object)
    brain["o"] = arr
    got = brain["o"]
    assert got.dtype == object and list(got) == list(arr)


FREQ = {
    "daily": lambda: pd.date_range("2024-01-01", periods=5, freq="D"),
    "hourly in Paris across DST": lambda: pd.date_range("2024-03-31", periods=5, freq="h", tz="Europe/Paris"),
    "business days": lambda: pd.bdate_range("2024-01-01", periods=5),
    "month ends": lambda: pd.date_range("2024-01-31", periods=5, freq="ME"),
    "timedeltas": lambda: pd.timedelta_range("1s", periods=5, freq="15s"),
}


@pytest.mark.parametrize("make_index", FREQ.values(), ids=FREQ.keys())
def test_the_frequency_of_a_time_index_survives(brain: Brain, make_index) -> None:
    index = make_index()
    frame = pd.DataFrame({"x": np.arange(5.0)}, index=index)
    brain["df"] = frame
    got = brain["df"]
    assert got.index.freq == index.freq
    pd.testing.assert_frame_equal(got, frame, check_exact=True, check_index_type=True, check_freq=True)
    series = pd.Series(np.arange(5), index=index, name="s")
    brain["s"] = series
    pd.testing.assert_series_equal(brain["s"], series, check_exact=True, check_freq=True)


def test_a_series_whose_name_json_cannot_hold_is_pickled_exactly(brain: Brain) -> None:
    series = pd.Series([1.5, 2.5], name=frozenset({"a"}))
    brain["s"] = series
    assert brain.view("s").codec == "pickle5"
    back = brain["s"]
    pd.testing.assert_series_equal(back, series)
    assert back.name == frozenset({"a"})


def test_a_str_with_a_lone_surrogate_comes_back_exactly(brain: Brain) -> None:
    # Not UTF-8, so not text: pickled, as Python keeps it.
    brain["s"] = "a\ud800b"
    assert brain["s"] == "a\ud800b"
    assert brain.metadata("s")["codec"] == "pickle5"
    brain["t"] = "plain é"
    assert brain.metadata("t")["codec"] == "text"
