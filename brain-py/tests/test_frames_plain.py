"""Frames of numbers and strings with a range index are built directly from
the stored columns, not through pyarrow's general ``to_pandas``: the frame
must be exactly the one ``to_pandas`` makes, and every other frame must go
the general way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from brain import Brain, _codecs
from _helpers import assert_array_zero_copy

N = 20_000  # rows: each numeric column is mapped, not read into private memory

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
pandas_3 = pytest.mark.skipif(not PANDAS_3, reason="the direct build needs pandas 3's str dtype")


def numbers_and_strings(rows: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    columns: dict[str, Any] = {
        dtype: rng.integers(0, 100, rows).astype(dtype)
        for dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    }
    columns["float32"] = rng.random(rows).astype("float32")
    columns["float64"] = rng.random(rows)
    columns["nan"] = np.where(np.arange(rows) % 3 == 0, np.nan, 1.5)
    columns["s"] = pd.array([f"s{i % 89}" for i in range(rows)], dtype="str")
    columns["ü ünïcode"] = pd.array([None if i % 7 == 0 else "ß" * (i % 5) for i in range(rows)], dtype="str")
    return pd.DataFrame(columns)


def _named_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.index = pd.RangeIndex(10, 10 + 3 * len(frame), 3, name="row")
    return frame


PLAIN: dict[str, Callable[[], pd.DataFrame]] = {
    "numbers and strings": numbers_and_strings,
    "one row": lambda: numbers_and_strings(1),
    "a named, stepped range index": lambda: _named_range(numbers_and_strings()),
    "one column": lambda: pd.DataFrame({"x": np.arange(N, dtype="f8")}),
    "strings only": lambda: pd.DataFrame({"a": pd.array(["x"] * N, dtype="str")}),
    "integer labels": lambda: pd.DataFrame(np.ones((N, 3)), columns=[3, 7, 11]),
    "integer labels of a RangeIndex": lambda: pd.DataFrame(np.ones((N, 3))),
}


def _with(frame: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    frame = frame.copy()
    for name, values in columns.items():
        frame[name] = values
    return frame


def _with_attrs() -> pd.DataFrame:
    frame = numbers_and_strings()
    frame.attrs["source"] = "test"
    return frame


NOT_PLAIN: dict[str, Callable[[], pd.DataFrame]] = {
    "a bool column": lambda: _with(numbers_and_strings(), flag=np.arange(N) % 2 == 0),
    "a nullable Int64": lambda: _with(numbers_and_strings(), I=pd.array([None, *range(N - 1)], dtype="Int64")),
    "a categorical": lambda: _with(numbers_and_strings(), c=pd.Categorical(["a", "b"] * (N // 2))),
    "a datetime": lambda: _with(numbers_and_strings(), t=pd.date_range("2026-01-01", periods=N, freq="s")),
    "string[pyarrow] (pd.NA)": lambda: _with(numbers_and_strings(), p=pd.array(["x"] * N, dtype="string[pyarrow]")),
    "an object column": lambda: _with(numbers_and_strings(), o=pd.Series([b"b"] * N, dtype=object)),
    "an index of values": lambda: numbers_and_strings().set_index("int64"),
    "two levels of labels": lambda: pd.DataFrame(
        np.ones((N, 2)), columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])
    ),
    "attrs": _with_attrs,
    "no rows": lambda: numbers_and_strings(0),
}


def _general(brain: Brain, name: str) -> pd.DataFrame:
    """The frame pyarrow's general conversion makes of the stored table."""
    return brain.get(name, as_arrow=True).to_pandas(split_blocks=True)


def _direct(brain: Brain, name: str, columns: list[str] | None = None) -> Any:
    """What the direct build makes of the stored table (None: not plain, or
    not stored as a table at all)."""
    obj = brain.view(name)
    if obj.codec != "pandas":
        return None
    table = _codecs.read_arrow(obj, columns)
    return _codecs._plain_frame(table, (table.schema.metadata or {}).get(b"pandas"))


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=True, check_column_type=True)
    assert type(got.index) is type(expected.index)
    assert got.columns.dtype == expected.columns.dtype


@pandas_3
@pytest.mark.parametrize("make", PLAIN.values(), ids=PLAIN.keys())
def test_a_plain_frame_is_built_directly_and_equals_what_pyarrow_makes(brain: Brain, make: Callable[[], Any]) -> None:
    original = make()
    brain["df"] = original
    assert _direct(brain, "df") is not None, "the frame took the general conversion"
    got = brain["df"]
    _assert_same(got, original)
    general = _general(brain, "df")
    if isinstance(original.columns, pd.RangeIndex):
        # pyarrow gives an int64 Index back; brain makes the RangeIndex again.
        general.columns = original.columns
    _assert_same(got, general)
    for column in got.columns:  # and again: the plan is kept between reads
        pd.testing.assert_series_equal(brain["df"][column], original[column], check_exact=True)


@pytest.mark.parametrize("make", NOT_PLAIN.values(), ids=NOT_PLAIN.keys())
def test_any_other_frame_takes_the_general_conversion(brain: Brain, make: Callable[[], Any]) -> None:
    original = make()
    brain["df"] = original
    assert _direct(brain, "df") is None
    pd.testing.assert_frame_equal(brain["df"], original, check_exact=True)


@pandas_3
def test_picked_columns_are_built_directly_in_the_order_asked(brain: Brain) -> None:
    original = numbers_and_strings()
    brain["df"] = original
    picked = ["s", "float64", "int8"]
    assert _direct(brain, "df", picked) is not None
    _assert_same(brain.get("df", columns=picked), original[picked])


@pandas_3
def test_a_column_in_several_chunks_takes_the_general_conversion(brain: Brain) -> None:
    first, second = numbers_and_strings(5), numbers_and_strings(5)
    table = pa.concat_tables([pa.Table.from_pandas(first), pa.Table.from_pandas(second)])
    assert table.column("int8").num_chunks == 2
    assert _codecs._plain_frame(table, table.schema.metadata[b"pandas"]) is None


@pandas_3
def test_a_directly_built_frame_points_into_the_store_and_copies_on_write(brain: Brain) -> None:
    original = numbers_and_strings()
    brain["df"] = original
    got = brain["df"]
    for column in ("int64", "float64", "uint32"):
        assert_array_zero_copy(brain, "df", got[column].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no chained-assignment or read-only warning
        got["float64"] *= 2
        got.loc[got["int8"] > 50, "int64"] = -1
        got.loc[0, "s"] = "changed"
    assert_array_zero_copy(brain, "df", got["uint32"].to_numpy())  # untouched: still shared
    expected = original.copy()
    expected["float64"] *= 2
    expected.loc[expected["int8"] > 50, "int64"] = -1
    expected.loc[0, "s"] = "changed"
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_frame_equal(brain["df"], original, check_exact=True)


@pytest.mark.parametrize("picked", [None, ["float64", "int8"], ["s", "float64"]], ids=["whole", "numbers", "with strings"])
def test_renaming_the_axes_of_a_frame_read_leaves_later_reads_alone(brain: Brain, picked: list[str] | None) -> None:
    """Frames built from a kept plan share its labels; a name set on one
    frame's axes (``df.columns.name = ...``, in place) must not show on the
    next frame read."""
    original = _named_range(numbers_and_strings(50))
    brain["df"] = original
    expected = original if picked is None else original[picked]
    for _ in range(2):
        got = brain.get("df", columns=picked)
        got.columns.name = "renamed"
        got.index.name = "renamed too"
    got = brain.get("df", columns=picked)
    assert got.columns.name is None
    assert got.index.name == "row"
    _assert_same(got, expected)


def _pandas_table(rows: int = 5) -> pa.Table:
    return pa.Table.from_pandas(pd.DataFrame({"a": np.arange(rows), "s": pd.array(list("vwxyz"[:rows]), dtype="str")}))


CHANGED_ROWS: dict[str, Callable[[], pa.Table]] = {
    "a slice": lambda: _pandas_table().slice(1, 2),
    "a filter": lambda: _pandas_table().filter(pa.array([True, False, True, False, True])),
    "a concatenation": lambda: pa.concat_tables([_pandas_table(), _pandas_table()]),
}


@pytest.mark.parametrize("make", CHANGED_ROWS.values(), ids=CHANGED_ROWS.keys())
def test_a_table_whose_rows_changed_since_pandas_wrote_it_reads_as_to_pandas_makes_it(
    brain: Brain, make: Callable[[], Any]
) -> None:
    table = make()
    brain["t"] = table
    for _ in range(2):  # the second read has the plan of the first
        _assert_same(brain.get("t", as_pandas=True), table.to_pandas(split_blocks=True))


def test_the_same_pandas_metadata_over_other_types_reads_as_to_pandas_makes_it(brain: Brain) -> None:
    ints = pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]}))
    strings = ints.set_column(0, "a", pa.array(["x", "y"]))
    assert strings.schema.metadata == ints.schema.metadata
    brain["ints"], brain["strings"] = ints, strings
    for _ in range(2):
        _assert_same(brain.get("ints", as_pandas=True), ints.to_pandas(split_blocks=True))
        _assert_same(brain.get("strings", as_pandas=True), strings.to_pandas(split_blocks=True))


@pandas_3
def test_strings_follow_pandas_string_storage_option(brain: Brain) -> None:
    brain["df"] = numbers_and_strings(100)
    assert brain["df"]["s"].dtype.storage == "pyarrow"
    with pd.option_context("mode.string_storage", "python"):
        got = brain["df"]
        expected = _general(brain, "df")
        assert got["s"].dtype == expected["s"].dtype, (got["s"].dtype, expected["s"].dtype)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert brain["df"]["s"].dtype.storage == "pyarrow"


@pandas_3
def test_labels_follow_pandas_string_storage_option_in_a_frame_of_numbers(brain: Brain) -> None:
    # No column is a string, the labels are: the frame read before the
    # option changed must not decide how they are read after.
    brain["df"] = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50), "c": np.ones(50)})
    for _ in range(2):
        _assert_same(brain["df"], _general(brain, "df"))
        _assert_same(brain.get("df", columns=["c", "a"]), _general(brain, "df")[["c", "a"]])
    with pd.option_context("mode.string_storage", "python"):
        for _ in range(2):
            _assert_same(brain["df"], _general(brain, "df"))
            _assert_same(brain.get("df", columns=["c", "a"]), _general(brain, "df")[["c", "a"]])
        assert brain["df"].columns.dtype.storage == "python"
    assert brain["df"].columns.dtype.storage == "pyarrow"


class _Point(pa.ExtensionType):
    def __init__(self) -> None:
        super().__init__(pa.int64(), "brain.test.point")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> _Point:
        return cls()


def test_an_extension_type_registered_after_a_first_read_is_read_as_it(brain: Brain) -> None:
    value = pa.table({"p": pa.ExtensionArray.from_storage(_Point(), pa.array(np.arange(N)))})
    pa.register_extension_type(_Point())
    try:
        brain["t"] = value
    finally:
        pa.unregister_extension_type("brain.test.point")
    assert brain.get("t", as_arrow=True).column("p").type == pa.int64()  # not registered: its storage
    pa.register_extension_type(_Point())
    try:
        for _ in range(2):
            assert isinstance(brain.get("t", as_arrow=True).column("p").type, _Point)
    finally:
        pa.unregister_extension_type("brain.test.point")
