"""Every Arrow type, written from each library, read in each library, across processes.

A child process writes every case of _frames.py (pyarrow, pandas and polars
objects); the Rust helper, another process, reads each and writes it again
under ``rust/<name>`` (so Rust both reads and writes every type); this
process reads them all as pyarrow, pandas and polars. Read in the library
that wrote it, an object is equal to what was written, type for type. Read
in another, it has the type that library gives it (the case says which) and
the same values: both sides are converted to Arrow and compared exactly.
A library that has no such type raises BrainCodecError naming the column.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import _frames
from _frames import LIBRARIES, PANDAS_FRAMES, Case, stored_name
from _helpers import new_store_url, remove_store
from brain import Brain
from brain.exceptions import BrainCodecError
from test_interop import helper

READERS = ("arrow", "pandas", "polars")
WRITER_READER = {"pyarrow": "arrow", "pandas": "pandas", "polars": "polars"}


@pytest.fixture(scope="module")
def matrix() -> Iterator[tuple[Brain, dict[str, list[str]]]]:
    """A store holding every case, written by a child process, and its Rust copies;
    with the columns the Rust helper saw in each object."""
    url = new_store_url("shm", "matrix")
    try:
        path = url.removeprefix("shm://")
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            names = pool.apply(_frames.write_all, (path,))
        brain = Brain(path=path)
        seen = {}
        for name in names:
            if brain.metadata(name)["codec"] != "pickle5":
                seen[name] = helper("copy-arrow", path, "default", name, f"rust/{name}").splitlines()
        yield brain, seen
        brain.close()
    finally:
        remove_store(url)


def _cases() -> list[Any]:
    return [pytest.param(writer, case_id, id=f"{writer}-{case_id}") for writer, cases in LIBRARIES.items() for case_id in cases]


# ---------------------------------------------------------------- comparing across libraries


def _canonical_type(t: pa.DataType) -> pa.DataType:
    """The type two libraries' versions of a column are compared in: one of
    each family (strings, binaries, lists), dictionaries decoded."""
    if isinstance(t, pa.ExtensionType):
        return _canonical_type(t.storage_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return pa.large_binary()
    if pa.types.is_dictionary(t):
        return _canonical_type(t.value_type)
    if pa.types.is_run_end_encoded(t):
        return _canonical_type(t.value_type)
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.large_list(_canonical_type(t.value_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_canonical_type(t.value_type), t.list_size)
    if pa.types.is_map(t):
        return pa.map_(_canonical_type(t.key_type), _canonical_type(t.item_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, _canonical_type(t.field(i).type)) for i in range(t.num_fields)])
    return t


def _canonical_chunk(chunk: pa.Array, target: pa.DataType) -> pa.Array:
    if isinstance(chunk, pa.ExtensionArray):
        chunk = chunk.storage
    if pa.types.is_run_end_encoded(chunk.type):
        chunk = pc.run_end_decode(chunk)
    if pa.types.is_dictionary(chunk.type):
        # pyarrow has no take for string_view: decode through the canonical values.
        chunk = _canonical_chunk(chunk.dictionary, target).take(chunk.indices)
    chunk = chunk.cast(target, safe=True)
    if pa.types.is_temporal(target) and not pa.types.is_interval(target):
        # Python's datetime cannot hold every Arrow timestamp (year -1200): compare the numbers.
        chunk = chunk.view(pa.int32() if target.bit_width == 32 else pa.int64())
    return chunk


def _canonical(column: pa.ChunkedArray, like: pa.DataType) -> list[Any]:
    target = _canonical_type(like)
    return [value for chunk in column.chunks for value in _canonical_chunk(chunk, target).to_pylist()]


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (and to nothing else)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _arrow_of(value: Any) -> pa.ChunkedArray:
    """Column v of a value read in any library, as Arrow, exactly."""
    if isinstance(value, pa.Table):
        return value.column("v")
    if isinstance(value, (pl.DataFrame, pl.Series)):
        series = value["v"] if isinstance(value, pl.DataFrame) else value
        return pa.chunked_array(series.to_frame().to_arrow(compat_level=pl.CompatLevel.newest()).column(0))
    series = value["v"] if isinstance(value, pd.DataFrame) else value
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        # A numpy float column marks missing values with NaN: pandas' null.
        return pa.chunked_array([pa.array(series.to_numpy(), from_pandas=True)])
    return pa.chunked_array([pa.array(series)])


def _original(writer: str, case: Case) -> pa.ChunkedArray:
    return _arrow_of(case.make())


def _dtype(value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        return str(value["v"].dtype)
    if isinstance(value, pl.DataFrame):
        return str(value["v"].dtype)
    return str(value.dtype)


def _equal_in_own_library(writer: str, got: Any, expected: Any) -> None:
    if writer == "pyarrow":
        assert isinstance(got, pa.Table)
        assert got.schema == expected.schema, (got.schema, expected.schema)
        assert got.num_rows == expected.num_rows
        for column, original in zip(got.columns, expected.columns):
            assert _same(_canonical(column, original.type), _canonical(original, original.type))
    elif writer == "pandas":
        if isinstance(expected, pd.Series):
            pd.testing.assert_series_equal(got, expected, check_exact=True, check_index_type=True)
        else:
            pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=True, check_column_type=True)
    else:
        assert type(got) is type(expected)
        assert got.equals(expected)
        got_types = got.dtypes if isinstance(got, pl.DataFrame) else [got.dtype]
        expected_types = expected.dtypes if isinstance(expected, pl.DataFrame) else [expected.dtype]
        assert got_types == expected_types


def _read(brain: Brain, name: str, reader: str) -> Any:
    return brain.get(name, **{f"as_{reader}": True})


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("writer", "case_id"), _cases())
@pytest.mark.parametrize("copied_by_rust", [False, True], ids=["direct", "rust copy"])
def test_every_type_reads_in_every_library(
    matrix: tuple[Brain, dict[str, list[str]]], writer: str, case_id: str, reader: str, copied_by_rust: bool
) -> None:
    brain, _ = matrix
    case = LIBRARIES[writer][case_id]
    name = stored_name(writer, case_id)
    if case.pickled:
        assert brain.metadata(name)["codec"] == "pickle5"
        if copied_by_rust:
            pytest.skip("a pickled object is Python's only: Rust has no table to copy")
        if reader != WRITER_READER[writer]:
            # Only the writer's library can hold it: asked for as another's, it says so.
            with pytest.raises(BrainCodecError, match=f"reads back in {WRITER_READER[writer]} only"):
                _read(brain, name, reader)
            return
        _equal_in_own_library(writer, _read(brain, name, reader), case.make())
        return
    if copied_by_rust:
        name = f"rust/{name}"
        assert brain.metadata(name)["codec"] == "arrow"
    if reader == WRITER_READER[writer]:
        _equal_in_own_library(writer, _read(brain, name, reader), case.make())
        return
    expected_dtype = case.pandas if reader == "pandas" else case.polars if reader == "polars" else None
    if expected_dtype is None and reader != "arrow":
        with pytest.raises(BrainCodecError, match=f"{reader} cannot .* column 'v'"):
            _read(brain, name, reader)
        return
    got = _read(brain, name, reader)
    if case_id == "no columns":
        assert got.shape == (3, 0)
        return
    if expected_dtype is not None:
        assert _dtype(got) == expected_dtype
    original = _original(writer, case)
    assert _same(_canonical(_arrow_of(got), original.type), _canonical(original, original.type))


@pytest.mark.parametrize(("writer", "case_id"), [p for p in _cases() if not LIBRARIES[p.values[0]][p.values[1]].pickled])
def test_rust_reads_and_writes_every_type_exactly(matrix: tuple[Brain, dict[str, list[str]]], writer: str, case_id: str) -> None:
    brain, seen = matrix
    name = stored_name(writer, case_id)
    written = brain.get(name, as_arrow=True)
    copied = brain.get(f"rust/{name}", as_arrow=True)
    assert len(seen[name]) == written.num_columns
    _equal_in_own_library("pyarrow", copied, written)


@pytest.mark.parametrize("frame_id", PANDAS_FRAMES)
@pytest.mark.parametrize("copied_by_rust", [False, True], ids=["direct", "rust copy"])
def test_pandas_indexes_and_labels_read_everywhere(
    matrix: tuple[Brain, dict[str, list[str]]], frame_id: str, copied_by_rust: bool
) -> None:
    brain, _ = matrix
    original = PANDAS_FRAMES[frame_id]()
    name = stored_name("pandas frame", frame_id)
    assert brain.metadata(name)["codec"] == "pandas"
    if copied_by_rust:
        name = f"rust/{name}"
    _equal_in_own_library("pandas", brain.get(name, as_pandas=True), original)
    table = brain.get(name, as_arrow=True)
    assert table.num_rows == len(original)
    polars = brain.get(name, as_polars=True)
    if isinstance(original, pd.Series):
        assert isinstance(polars, pl.Series) and polars.name == original.name
        assert polars.to_list() == [None if pd.isna(v) else v for v in original]
        return
    # polars has no index: the frame's columns, without the index, as pl.from_pandas gives them.
    assert isinstance(polars, pl.DataFrame)
    assert polars.height == len(original)
    if not isinstance(original.columns, pd.MultiIndex):
        assert polars.columns == [str(label) for label in original.columns]


def test_a_table_polars_cannot_read_names_the_column(
    matrix: tuple[Brain, dict[str, list[str]]], capfd: pytest.CaptureFixture[str]
) -> None:
    brain, _ = matrix
    name = stored_name("pyarrow", "decimal256")
    capfd.readouterr()
    with pytest.raises(BrainCodecError, match=r"polars cannot read column 'v' of Arrow type decimal256\(40, 5\)") as err:
        brain.get(name, as_polars=True)
    assert "as_arrow=True" in str(err.value)
    # Refused before polars is asked: no panic of polars's printed on the way.
    assert "panic" not in capfd.readouterr().err


def test_asking_for_two_libraries_is_an_error(matrix: tuple[Brain, dict[str, list[str]]]) -> None:
    brain, _ = matrix
    with pytest.raises(ValueError, match="at most one"):
        brain.get(stored_name("pyarrow", "string"), as_pandas=True, as_polars=True)


def test_the_comparison_sees_a_changed_value() -> None:
    # The matrix is only as good as _same and _canonical: a float64 stand-in for
    # an int64 beyond 2**53 must not pass for it, nor NaN for a null.
    ints = pa.chunked_array([pa.array([2**60 + 1, None], pa.int64())])
    floats = pa.chunked_array([pa.array([float(2**60 + 1), None])])
    assert not _same(_canonical(floats, ints.type), _canonical(ints, ints.type))
    halves = pa.chunked_array([pa.array([1.5, None])])
    with pytest.raises(pa.ArrowInvalid):
        _canonical(halves, ints.type)
    times = pa.chunked_array([pa.array([1, None], pa.timestamp("ms"))])
    assert not _same(_canonical(times.cast(pa.timestamp("s"), safe=False), times.type), _canonical(times, times.type))
    assert not _same([1.0, None], [1.0, float("nan")])
    assert not _same(["a"], [b"a"])
    assert _same([float("nan")], [float("nan")])
