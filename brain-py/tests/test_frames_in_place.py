"""Frames changed in place: ``brain.assign``, ``brain.drop``, ``brain.append``
and ``brain.compact`` write only what changes, publish one version each, and
give every reader an ordinary frame."""

from __future__ import annotations

import datetime as dt

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from _helpers import new_store_url, remove_store
from brain import Brain, _brain, _frames
from brain.exceptions import (
    BrainCodecError,
    BrainColumnNotExistError,
    BrainError,
    BrainNameNotExistError,
    BrainStoreFullError,
    BrainUnsupportedObjectError,
)


def _sales(rows: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": pd.Series([f"r{i % 3}" for i in range(rows)], dtype="str"),
            "price": np.arange(rows, dtype=np.float64) * 1.5,
            "qty": np.arange(rows, dtype=np.int64),
            "note": pd.Series([f"n{i}" if i % 2 else None for i in range(rows)], dtype=object),
        }
    )


def test_assign_drop_append_and_compact_give_the_frame_pandas_would(brain: Brain) -> None:
    frame = _sales()
    brain["sales"] = frame
    held = brain["sales"]

    brain.assign("sales", margin=frame["price"] * 0.1, flag=np.arange(6) % 2 == 0)
    expected = frame.assign(margin=frame["price"] * 0.1, flag=np.arange(6) % 2 == 0)
    pd.testing.assert_frame_equal(brain["sales"], expected)
    # A column replaced in place keeps its position; object dtype is kept.
    brain.assign("sales", note=pd.Series(["x"] * 6, dtype=object))
    expected = expected.assign(note=pd.Series(["x"] * 6, dtype=object))
    pd.testing.assert_frame_equal(brain["sales"], expected)

    brain.drop("sales", ["qty"])
    expected = expected.drop(columns=["qty"])
    pd.testing.assert_frame_equal(brain["sales"], expected)

    more = expected.iloc[:3].copy()
    brain.append("sales", more)
    expected = pd.concat([expected, more], ignore_index=True)
    pd.testing.assert_frame_equal(brain["sales"], expected)
    pd.testing.assert_frame_equal(brain.get("sales", columns=["margin", "note"]), expected[["margin", "note"]])
    assert brain.get("sales", as_polars=True).equals(pl.from_pandas(expected))

    assert brain.compact("sales")
    pd.testing.assert_frame_equal(brain["sales"], expected)
    # One piece already: compacting again writes nothing.
    written = brain.store.metadata(brain.namespace, "sales")
    assert written is not None
    assert not brain.compact("sales")
    assert brain.store.metadata(brain.namespace, "sales") == written
    # The value read before any change is untouched.
    pd.testing.assert_frame_equal(held, frame)
    assert brain.names() == ["sales"]


CATEGORIES = ["a", "b", "c"]
CATEGORICAL_APPENDS: dict[str, tuple[list[Any], list[Any], dict[str, Any]]] = {
    # The same categories, more rows than categories.
    "same categories": (["a", "b", "a", "b"], ["b", "a", "a", "b"], {"categories": CATEGORIES}),
    # Fewer rows than categories: the unused one stays a category.
    "an unused category": (["a"], ["b"], {"categories": CATEGORIES}),
    "ordered, with missing values": (["c", None], [None, "a"], {"categories": CATEGORIES, "ordered": True}),
    # New categories in the rows appended: the union, old ones first.
    "new categories": (["a", "b"], ["z", "a", "y"], {}),
    # More categories than int8 codes number.
    "300 categories": ([f"k{i}" for i in range(200)], [f"k{i}" for i in range(100, 300)], {}),
}


@pytest.mark.parametrize("old, new, how", CATEGORICAL_APPENDS.values(), ids=CATEGORICAL_APPENDS.keys())
def test_categorical_columns_appended_to_read_the_same_after_compacting(
    brain: Brain, old: list[Any], new: list[Any], how: dict[str, Any]
) -> None:
    def frame(values: list[Any]) -> pd.DataFrame:
        return pd.DataFrame({"c": pd.Categorical(values, **how), "n": np.arange(len(values))})

    brain["f"] = frame(old)
    brain.append("f", frame(new))
    appended = brain["f"]
    if how:
        pd.testing.assert_frame_equal(appended, pd.concat([frame(old), frame(new)], ignore_index=True))
    as_polars = brain.get("f", as_polars=True)
    assert brain.compact("f")
    pd.testing.assert_frame_equal(brain["f"], appended)
    assert brain.get("f", as_polars=True).equals(as_polars)
    column = brain.get("f", as_arrow=True).column("c")
    assert column.num_chunks == 1
    dictionary = column.chunk(0).dictionary.to_pylist()
    assert len(set(dictionary)) == len(dictionary), "each category once"


def test_frames_without_columns_keep_their_rows_through_every_change(brain: Brain) -> None:
    brain["f"] = pd.DataFrame({"a": [1, 2, 3]})
    brain.drop("f", ["a"])
    expected = pd.DataFrame({"a": [1, 2, 3]}).drop(columns=["a"])
    pd.testing.assert_frame_equal(brain["f"], expected)
    assert brain.compact("f")
    pd.testing.assert_frame_equal(brain["f"], expected)
    brain.append("f", pd.DataFrame(index=range(2)))
    expected = pd.concat([expected, pd.DataFrame(index=range(2))], ignore_index=True)
    assert brain["f"].shape == (5, 0)
    # A frame in parts replaced by one without columns.
    brain["g"] = pd.DataFrame({"a": [1, 2, 3]})
    brain.assign("g", b=[4, 5, 6])
    brain["g"] = pd.DataFrame(index=range(3))
    assert brain["g"].shape == (3, 0)
    brain.append("g", pd.DataFrame(index=range(4)))
    assert brain["g"].shape == (7, 0)


@pytest.mark.shm_only("fsck counts parts no frame references; the memory store has no fsck")
def test_a_frame_left_without_columns_leaves_no_part_behind(brain: Brain) -> None:
    brain["f"] = pd.DataFrame({"a": [1, 2, 3]})
    brain.drop("f", ["a"])
    assert brain.compact("f")
    report = brain.store.fsck()
    assert report["unreferenced_frame_parts"] == 0 and not report["broken_frames"], report
    assert brain["f"].shape == (3, 0)
    del brain["f"]
    assert brain.store.fsck()["objects"] == 0


def test_new_columns_take_the_kind_of_the_frames_labels(brain: Brain) -> None:
    # Not evenly spaced: pandas makes a RangeIndex of those, which brain pickles.
    ints = pd.DataFrame({3: [1, 2], 7: [1.0, 2.0], 8: [0, 0]})
    brain["ints"] = ints
    assert brain.metadata("ints")["codec"] == "pandas"
    brain.assign("ints", {9: [5, 6]})
    pd.testing.assert_frame_equal(brain["ints"], ints.join(pd.DataFrame({9: [5, 6]})))
    with pytest.raises(TypeError, match="not of the kind of the labels of frame 'ints'"):
        brain.assign("ints", z=[5, 6])
    strs = pd.DataFrame({"a": [1, 2]})
    brain["strs"] = strs
    with pytest.raises(TypeError, match="store the whole frame"):
        brain.assign("strs", {5: [3, 4]})
    with pytest.raises(TypeError, match="not of the kind"):
        brain.assign("strs", {"b": [3, 4], 6: [5, 6]})
    # Refused changes change nothing.
    pd.testing.assert_frame_equal(brain["ints"], ints.join(pd.DataFrame({9: [5, 6]})))
    pd.testing.assert_frame_equal(brain["strs"], strs)
    # A frame without columns takes the kind of its first ones.
    brain["none"] = pd.DataFrame(index=range(3))
    brain.assign("none", a=[1, 2, 3])
    pd.testing.assert_frame_equal(brain["none"], pd.DataFrame(index=range(3)).assign(a=[1, 2, 3]))
    brain["none"] = pd.DataFrame(index=range(2))
    brain.assign("none", {4: [1.5, 2.5]})
    pd.testing.assert_frame_equal(brain["none"], pd.DataFrame({4: [1.5, 2.5]}))


def test_rows_whose_columns_pyarrow_cannot_type_append_as_pandas_concatenates(brain: Brain) -> None:
    """An object column of no rows, or of None only, has no type for pyarrow
    (null): it takes the stored frame's, as pd.concat keeps the dtype."""
    frame = pd.DataFrame({"k": np.arange(4), "o": pd.Series(["a", "b", None, "d"], dtype=object)})
    brain["f"] = frame
    expected = frame
    back = brain["f"]
    for rows in (
        back.head(0),
        back[back.k > 5],
        pd.DataFrame({"k": [7, 8], "o": pd.Series([None, None], dtype=object)}),
    ):
        brain.append("f", rows)
        expected = pd.concat([expected, rows], ignore_index=True)
        pd.testing.assert_frame_equal(brain["f"], expected)


def test_rows_of_a_frame_arrow_cannot_hold_append_by_writing_it_whole(brain: Brain) -> None:
    """A frame with a column of dicts and lists is pickled, not a table: an
    append of more such rows, to a new name and then again, writes the
    whole frame with them (the index counting on), as pd.concat would."""
    rows = pd.DataFrame({"a": [1, 2], "o": [{"x": 1}, [1, 2]]})
    brain.append("f", rows)
    brain.append("f", rows)
    brain.append("f", rows.set_axis([10, 11]))
    expected = pd.concat([pd.concat([rows, rows], ignore_index=True), rows.set_axis([10, 11])])
    pd.testing.assert_frame_equal(brain["f"], expected)
    with pytest.raises(BrainCodecError, match="columns in order"):
        brain.append("f", rows.rename(columns={"o": "p"}))
    with pytest.raises(TypeError, match="stored as pickle5, not as a table"):
        brain.append("f", pa.table({"a": [1]}))
    with pytest.raises(TypeError, match="stored as pickle5, not as a table"):
        brain.compact("f")
    pd.testing.assert_frame_equal(brain["f"], expected)


def test_record_batches_stream_into_a_new_name_and_other_values_are_refused(brain: Brain) -> None:
    table = pa.table({"x": [1, 2, 3, 4, 5]})
    for batch in table.to_batches(max_chunksize=2):
        brain.append("t", batch)
    assert brain.get("t", as_arrow=True).equals(table)
    for value, kind in ((pd.Series([1, 2]), "a pandas Series"), ([1, 2, 3], "a list"), (np.arange(3), "a numpy ndarray")):
        with pytest.raises(TypeError, match=f"append takes a pandas or polars DataFrame.*, not {kind};"):
            brain.append("other", value)
    assert "other" not in brain
    # Rows of another library than the frame's are named with their library.
    brain["pandas"] = pd.DataFrame({"x": [1]})
    with pytest.raises(TypeError, match="written from pandas: append a pandas DataFrame, not a polars DataFrame"):
        brain.append("pandas", pl.DataFrame({"x": [2]}))


def test_a_scalar_assigned_to_an_empty_frame_keeps_its_type(brain: Brain) -> None:
    brain["pd"] = pd.DataFrame({"a": pd.Series([], dtype="int64")})
    brain.assign("pd", z=1, t=True, f=1.5)
    expected = pd.DataFrame({"a": pd.Series([], dtype="int64")}).assign(z=1, t=True, f=1.5)
    assert brain["pd"].dtypes.to_dict() == expected.dtypes.to_dict()
    # So a later append of real rows fits it.
    brain.append("pd", pd.DataFrame({"a": [1], "z": [2], "t": [False], "f": [0.5]}))
    assert brain["pd"]["z"].tolist() == [2]
    brain["pl"] = pl.DataFrame({"a": pl.Series([], dtype=pl.Int64)})
    brain.assign("pl", z=1, s="x")
    assert brain["pl"].schema == pl.Schema({"a": pl.Int64, "z": pl.Int64, "s": pl.String})
    brain["pa"] = pa.table({"a": pa.array([], pa.int64())})
    brain.assign("pa", z=1, s="x")
    assert brain["pa"].schema.types == [pa.int64(), pa.int64(), pa.string()]


def test_a_column_of_lists_of_different_lengths_is_assigned(brain: Brain) -> None:
    tags = [["x"], ["y", "z"]]
    brain["pl"] = pl.DataFrame({"a": [1, 2]})
    brain.assign("pl", tags=tags)
    assert brain["pl"]["tags"].to_list() == tags
    brain["pa"] = pa.table({"a": [1, 2]})
    brain.assign("pa", tags=tags)
    assert brain["pa"].column("tags").to_pylist() == tags


def test_pandas_idioms_of_assign_and_drop(brain: Brain) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    brain["f"] = frame
    brain.assign("f", z=5, s="x")  # scalars: one value for every row
    expected = frame.assign(z=5, s="x")
    pd.testing.assert_frame_equal(brain["f"], expected)
    brain.drop("f", pd.Index(["z"]))
    brain.drop("f", np.array(["s"]))
    pd.testing.assert_frame_equal(brain["f"], frame)
    with pytest.raises(BrainNameNotExistError):
        brain.compact("missing")


def test_rows_of_one_dtype_are_wrapped_where_they_lie_and_others_are_not(brain: Brain) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({f"m{i}": rng.random(50) for i in range(12)})
    brain["w"] = frame
    rows = pd.DataFrame({f"m{i}": rng.random(20) for i in range(12)})
    rows.loc[[3, 7], "m3"] = np.nan
    stored = _frames._Stored(brain.store, brain.namespace, "w")
    table = _frames._uniform_rows(stored, rows)
    assert table is not None
    assert table.column("m3").null_count == 2 and table.column("m0").null_count == 0
    # A column without NaN is the frame's own memory, not a copy.
    values = rows.to_numpy()
    assert table.column("m0").chunk(0).buffers()[1].address == values[:, 0].__array_interface__["data"][0]
    # Any other dtype, order of labels or type of label takes pyarrow's from_pandas.
    assert _frames._uniform_rows(stored, rows.astype("float32")) is None
    assert _frames._uniform_rows(stored, rows[list(reversed(rows.columns))]) is None
    assert _frames._uniform_rows(stored, rows.set_axis(range(12), axis=1)) is None
    brain.append("w", rows)
    expected = pd.concat([frame, rows], ignore_index=True)
    pd.testing.assert_frame_equal(brain["w"], expected)
    with pytest.raises(BrainError):
        brain.append("w", rows.astype("float32"))
    pd.testing.assert_frame_equal(brain["w"], expected)


def test_an_index_that_is_not_a_range_is_appended_as_it_is(brain: Brain) -> None:
    frame = _sales(4).set_index(pd.Index(["a", "b", "c", "d"], name="key"))
    brain["f"] = frame
    more = _sales(2).set_index(pd.Index(["e", "f"], name="key"))
    brain.append("f", more)
    pd.testing.assert_frame_equal(brain["f"], pd.concat([frame, more]))
    brain.assign("f", total=np.ones(6))
    assert list(brain["f"].index) == list("abcdef")


def test_assign_lines_a_series_up_with_the_frames_index_as_pandas_does(brain: Brain) -> None:
    frame = pd.DataFrame({"price": [10.0, 20.0, 30.0]}, index=["a", "b", "c"])
    brain["p"] = frame
    reversed_labels = pd.Series([3.0, 2.0, 1.0], index=["c", "b", "a"])
    some = pd.Series([5.0], index=["b"])
    brain.assign("p", disc=reversed_labels, some=some, computed=lambda df: df.price * 2)
    pd.testing.assert_frame_equal(brain["p"], frame.assign(disc=reversed_labels, some=some, computed=frame.price * 2))
    # A Series that cannot be lined up is refused, and the frame kept.
    before = brain["p"]
    with pytest.raises(ValueError, match="duplicate labels"):
        brain.assign("p", bad=pd.Series([1.0, 2.0, 3.0], index=["a", "a", "b"]))
    with pytest.raises(ValueError, match="none of the labels"):
        brain.assign("p", bad=pd.Series([1.0, 2.0, 3.0]))
    pd.testing.assert_frame_equal(brain["p"], before)
    # By position, its values are taken as they are.
    brain.assign("p", by_position=pd.Series([1.0, 2.0, 3.0]).to_numpy())
    assert list(brain["p"]["by_position"]) == [1.0, 2.0, 3.0]
    # A frame of the default index takes a Series of it unchanged.
    brain["r"] = pd.DataFrame({"x": np.arange(4)})
    brain.assign("r", y=brain["r"]["x"] * 2)
    assert list(brain["r"]["y"]) == [0, 2, 4, 6]


def test_dtypes_brain_restores_follow_new_columns_past_an_index(brain: Brain) -> None:
    frame = pd.DataFrame({"v": [1, 2, 3]}, index=pd.Index(["a", "b", "c"], name="key"))
    brain["f"] = frame
    objects = pd.Series(["x", None, "z"], index=frame.index, dtype=object)
    tags = pd.Series([[1], [], None], index=frame.index, dtype=pd.ArrowDtype(pa.list_(pa.int64())))
    brain.assign("f", note=objects, tags=tags)
    expected = frame.copy()
    expected["note"] = pd.Series(objects.to_numpy(), index=frame.index, dtype=object)
    expected["tags"] = pd.Series(tags.array, index=frame.index)
    got = brain["f"]
    pd.testing.assert_frame_equal(got, expected)
    assert got["note"].dtype == object and got.index.name == "key"
    with pytest.raises(Exception, match="is the name of the frame's index"):
        brain.assign("f", key=[1, 2, 3])


def test_an_appended_date_index_drops_a_frequency_it_breaks(brain: Brain) -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.date_range("2026-01-01", periods=2, freq="D"))
    brain["f"] = frame
    more = pd.DataFrame({"v": [3.0]}, index=pd.DatetimeIndex(["2026-02-01"]))
    brain.append("f", more)
    got = brain["f"]
    assert list(got["v"]) == [1.0, 2.0, 3.0] and got.index.freq is None


def test_wait_for_and_an_update_give_a_changed_frame(brain: Brain) -> None:
    brain["f"] = _sales(3)
    brain.assign("f", x=np.zeros(3))
    assert list(brain.wait_for("f", timeout=5).columns)[-1] == "x"
    brain.update("f", lambda f: f.assign(y=1))
    assert list(brain["f"].columns)[-2:] == ["x", "y"]


def test_tables_stored_in_parts_from_the_start_read_back_as_written(
    brain: Brain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables of 64 MiB or more are written as a frame of one part; here every table is."""
    monkeypatch.setattr(_frames, "PARTS_FROM_BYTES", 0)
    pandas_frame = _sales(5).set_index(pd.Index(list("abcde"), name="k"))
    values = {
        "pandas": pandas_frame,
        "series": pd.Series([1.5, 2.5], name="s"),
        "polars": pl.DataFrame({"x": [1, 2], "s": ["a", "b"]}),
        "table": pa.table({"x": [1, 2]}),
        "batch": pa.record_batch({"x": [1, 2]}),
    }
    for name, value in values.items():
        brain[name] = value
        stored = brain.store.get(brain.namespace, name)
        assert isinstance(stored, _brain.Frame) and stored.whole and stored.part_count == 1, name
    pd.testing.assert_frame_equal(brain["pandas"], pandas_frame)
    pd.testing.assert_series_equal(brain["series"], values["series"])
    assert brain["polars"].equals(values["polars"])
    assert brain["table"].equals(values["table"])
    assert brain["batch"].equals(values["batch"])
    pd.testing.assert_frame_equal(brain.get("pandas", columns=["qty"]), pandas_frame[["qty"]])
    # The first change writes only the new column.
    brain.assign("pandas", extra=np.ones(5))
    stored = brain.store.get(brain.namespace, "pandas")
    assert not stored.whole and stored.part_count == 2
    pd.testing.assert_frame_equal(brain["pandas"], pandas_frame.assign(extra=np.ones(5)))
    # A table written over it takes its place, and its parts go.
    brain["pandas"] = pandas_frame
    assert brain.store.get(brain.namespace, "pandas").part_count == 1
    if brain.url.startswith("shm"):
        assert brain.store.fsck()["unreferenced_frame_parts"] == 0


def test_polars_and_arrow_frames_change_in_place(brain: Brain) -> None:
    brain["p"] = pl.DataFrame({"x": [1, 2], "s": ["a", "b"]})
    brain.append("p", pl.DataFrame({"x": [3], "s": ["c"]}))
    brain.assign("p", y=[0.5, 1.5, 2.5])
    assert brain["p"].equals(pl.DataFrame({"x": [1, 2, 3], "s": ["a", "b", "c"], "y": [0.5, 1.5, 2.5]}))

    brain["t"] = pa.table({"x": [1, 2]})
    brain.append("t", pa.table({"x": [3]}))
    brain.assign("t", y=pa.array([1.0, 2.0, 3.0]))
    assert brain["t"].to_pydict() == {"x": [1, 2, 3], "y": [1.0, 2.0, 3.0]}
    # append to a name that does not exist sets it.
    brain.append("new", pa.table({"x": [1]}))
    assert brain["new"].to_pydict() == {"x": [1]}
    brain.drop("t", ["x"])
    assert brain["t"].to_pydict() == {"y": [1.0, 2.0, 3.0]}
    # A frame written whole is not changed by compacting.
    assert not brain.compact("new")


def test_bad_changes_are_refused_and_change_nothing(brain: Brain) -> None:
    frame = _sales(3)
    brain["f"] = frame
    with pytest.raises(BrainNameNotExistError):
        brain.assign("missing", x=[1])
    with pytest.raises(ValueError, match="4 rows, frame 'f' has 3"):
        brain.assign("f", x=[1, 2, 3, 4])
    with pytest.raises(BrainColumnNotExistError, match="has no column 'nope'; its columns are 'region'"):
        brain.drop("f", ["nope"])
    with pytest.raises(Exception, match="columns and types in order.*rows.astype"):
        brain.append("f", pd.DataFrame({"other": [1]}))
    with pytest.raises(TypeError, match="append a pandas DataFrame"):
        brain.append("f", pa.table({"x": [1]}))
    brain["n"] = 5
    with pytest.raises(TypeError, match="stored as pickle5, not as a table"):
        brain.assign("n", x=[1])
    with pytest.raises(ValueError, match="at least one column"):
        brain.assign("f")
    for values in (np.array([1 + 2j, 3j, 1j]), (i for i in range(3))):
        with pytest.raises(TypeError, match="Arrow cannot store exactly"):
            brain.assign("f", x=values)
    brain["t"] = pa.table({"a": [1, 2, 3]})
    with pytest.raises(TypeError, match="pyarrow cannot make columns of the values given"):
        brain.assign("t", x=np.array([1 + 2j, 3j, 1j]))
    assert brain["t"].column_names == ["a"]
    pd.testing.assert_frame_equal(brain["f"], frame)
    fsck = brain.store.fsck() if brain.url.startswith("shm") else None
    if fsck is not None:
        assert fsck["unreferenced_frame_parts"] == 0 and fsck["broken_frames"] == []


def test_columns_computed_from_the_frame_and_python_objects_in_polars(brain: Brain) -> None:
    brain["pl"] = pl.DataFrame({"a": [1, 2, 3]})
    brain.assign("pl", z=pl.col("a") * 2, w=lambda frame: frame["a"] + 1, k=7)
    expected = pl.DataFrame({"a": [1, 2, 3], "z": [2, 4, 6], "w": [2, 3, 4], "k": [7, 7, 7]})
    assert brain["pl"].equals(expected)
    # Python objects would be stored as the addresses polars keeps them at.
    with pytest.raises(BrainUnsupportedObjectError, match="column 's' holds Python objects"):
        brain.assign("pl", s=[{1}, {2}, {3}])
    assert brain["pl"].equals(expected)

    # In order, each seeing the ones before it; a single value for every row.
    brain.assign("pl", total=pl.col("a").sum(), next=pl.col("total") + 1)
    assert brain["pl"]["next"].to_list() == [7, 7, 7]
    brain.assign("pl", ten=10, twenty=lambda frame: frame["ten"] * 2, eleven=pl.col("ten") + 1)
    assert brain["pl"].select("ten", "twenty", "eleven").rows() == [(10, 20, 11)] * 3
    with pytest.raises(ValueError, match="column 'h': polars cannot compute it on frame 'pl'"):
        brain.assign("pl", h=pl.col("a").head(2))

    brain["pd"] = pd.DataFrame({"price": [3.0, 4.0], "cost": [1.0, 1.5]})
    brain.assign("pd", margin=lambda frame: frame.price - frame.cost)
    assert brain["pd"]["margin"].tolist() == [2.0, 2.5]
    computed = dict(price=lambda d: d.price * 2, double=lambda d: d.price, fee=1.0, net=lambda d: d.double - d.fee)
    expected = brain["pd"].assign(**computed)
    brain.assign("pd", **computed)
    pd.testing.assert_frame_equal(brain["pd"], expected)
    with pytest.raises(TypeError, match="is a polars expression, but frame 'pd' was written from pandas"):
        brain.assign("pd", z=pl.col("price"))

    brain["pa"] = pa.table({"a": [1, 2]})
    brain.assign("pa", doubled=lambda table: pc.multiply(table["a"], 2))
    assert brain["pa"].to_pydict() == {"a": [1, 2], "doubled": [2, 4]}
    brain.assign("pa", k=3, big=np.array([1.5, 2.5], dtype=">f8"), sum=lambda t: pc.add(t["k"], t["big"]))
    assert brain["pa"].select(["k", "sum"]).to_pydict() == {"k": [3, 3], "sum": [4.5, 5.5]}


@pytest.mark.parametrize("indexed", [False, True], ids=["RangeIndex", "other index"])
def test_rows_with_missing_values_make_integer_and_bool_columns_nullable(brain: Brain, indexed: bool) -> None:
    frame = pd.DataFrame({"i": [1, 2], "b": [True, False], "f": [0.5, 1.5]})
    rows = pd.DataFrame(
        {
            "i": pd.array([2**62 + 1, None], dtype="Int64"),
            "b": pd.array([None, True], dtype="boolean"),
            "f": [2.5, np.nan],
        }
    )
    if indexed:
        frame.index, rows.index = pd.Index(["w", "x"]), pd.Index(["y", "z"])
    brain["f"] = frame
    brain.append("f", rows)
    expected = pd.concat([frame, rows], ignore_index=not indexed)
    assert expected["i"].dtype == "Int64" and expected["b"].dtype == "boolean"
    pd.testing.assert_frame_equal(brain["f"], expected)
    pd.testing.assert_frame_equal(brain.get("f", columns=["i", "b"]), expected[["i", "b"]])
    assert brain.compact("f")
    pd.testing.assert_frame_equal(brain["f"], expected)


def test_columns_of_another_byte_order_and_projections_by_index(brain: Brain) -> None:
    frame = _sales(3)
    brain["f"] = frame
    brain.assign("f", big=np.array([1, 2, 3], dtype=">i8"))
    assert brain["f"]["big"].tolist() == [1, 2, 3]
    brain["t"] = pa.table({"a": [1, 2, 3]})
    brain.assign("t", big=np.array([1.5, 2, 3], dtype=">f8"))
    assert brain["t"]["big"].to_pylist() == [1.5, 2.0, 3.0]
    # columns= takes what drop takes: a pandas Index, a numpy array.
    picked = frame.columns[:2]
    pd.testing.assert_frame_equal(brain.get("f", columns=picked), frame[picked])
    pd.testing.assert_frame_equal(brain.get("f", columns=np.array(picked)), frame[picked])


class _Tagged(pa.ExtensionType):
    """A pyarrow extension type with a parameter, as libraries define them."""

    def __init__(self, tag: int) -> None:
        self.tag = tag
        super().__init__(pa.int64(), "brain-test.tagged")

    def __arrow_ext_serialize__(self) -> bytes:
        return str(self.tag).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> _Tagged:
        return cls(int(serialized))


def test_rows_of_another_extension_type_or_enum_are_refused(brain: Brain) -> None:
    """Rows whose Arrow storage type matches but whose type does not (a
    period of another frequency, an interval closed on the other side, an
    extension type's parameter, a polars Enum's categories) would be read
    as the frame's type, their values changed."""
    cases: list[tuple[str, Any, Any]] = [
        (
            "period",
            pd.DataFrame({"p": pd.period_range("2020-01", periods=2, freq="M")}),
            pd.DataFrame({"p": pd.period_range("2020-01-01", periods=1, freq="D")}),
        ),
        (
            "interval",
            pd.DataFrame({"iv": pd.interval_range(0, 2, closed="right")}),
            pd.DataFrame({"iv": pd.interval_range(5, 6, closed="left")}),
        ),
        (
            "enum",
            pl.DataFrame({"a": pl.Series(["x"], dtype=pl.Enum(["x", "y"]))}),
            pl.DataFrame({"a": pl.Series(["z"], dtype=pl.Enum(["z"]))}),
        ),
    ]
    pa.register_extension_type(_Tagged(0))
    try:
        tagged = lambda tag: pa.table({"t": pa.ExtensionArray.from_storage(_Tagged(tag), pa.array([tag]))})  # noqa: E731
        cases += [("extension", tagged(1), tagged(2)), ("plain", tagged(1), pa.table({"t": [5]}))]
        for name, frame, rows in cases:
            brain[name] = frame
            with pytest.raises(BrainError, match="columns and types in order"):
                brain.append(name, rows)
            assert brain[name].equals(frame), name
        # Rows of the same type still go on.
        brain.append("period", pd.DataFrame({"p": pd.period_range("2020-03", periods=1, freq="M")}))
        assert brain["period"]["p"].tolist() == list(pd.period_range("2020-01", periods=3, freq="M"))
        brain.append("enum", pl.DataFrame({"a": pl.Series(["y"], dtype=pl.Enum(["x", "y"]))}))
        assert brain["enum"]["a"].to_list() == ["x", "y"]
        brain.append("extension", tagged(1))
        assert brain["extension"].column("t").type == _Tagged(1)
    finally:
        pa.unregister_extension_type("brain-test.tagged")


@pytest.mark.shm_only("parts are listed by the raw directory; the memory store has no fsck")
def test_parts_are_shared_and_given_back(brain: Brain, store_path: Path) -> None:
    brain["f"] = _sales(1000)
    brain.assign("f", a=np.zeros(1000))
    brain.assign("f", b=np.ones(1000))
    frame = brain.store.get(brain.namespace, "f")
    assert isinstance(frame, _brain.Frame) and frame.part_count == 3
    # Its metadata is the frame's: the writer's codec, the parts' bytes.
    info = brain.metadata("f")
    assert info["codec"] == "pandas" and info["size"] == frame.size > 0
    assert brain.store.metadata(brain.namespace, "f")["parts"] == 3
    brain.drop("f", ["a"])
    assert brain.store.get(brain.namespace, "f").part_count == 2
    assert brain.store.fsck()["objects"] == 3  # the manifest and two parts
    brain.compact("f")
    assert brain.store.get(brain.namespace, "f").part_count == 1
    del brain["f"]
    assert brain.store.fsck()["objects"] == 0, "deleting the frame deletes its parts"
    # A frame replaced by something else leaves parts that gc gives back.
    brain["g"] = _sales(10)
    brain.assign("g", a=np.zeros(10))
    brain["g"] = "text now"
    assert brain.store.fsck()["unreferenced_frame_parts"] == 2
    assert brain.store.gc()["frame_parts"] == 2
    assert brain.store.fsck()["objects"] == 1


def test_a_full_store_gives_back_the_parts_a_replaced_frame_left(tmp_path: Path) -> None:
    brain = Brain(path=tmp_path / "store", capacity="3M")
    brain["f"] = pd.DataFrame({"x": np.arange(100_000.0)})
    brain.append("f", pd.DataFrame({"x": np.arange(100_000.0)}))
    brain["f"] = "text now"  # its two parts are garbage, left to gc
    del brain["f"]
    assert brain.names() == [] and brain.used() > 1_500_000
    # A write that needs their room gets it, as gc would have given it.
    brain["big"] = np.zeros(250_000)
    assert brain.names() == ["big"]
    assert brain.store.fsck()["unreferenced_frame_parts"] == 0
    # A write too large even without them is still refused, losing nothing.
    with pytest.raises(BrainStoreFullError):
        brain["huge"] = np.zeros(1_000_000)
    assert brain.names() == ["big"]


def test_a_change_refused_as_full_names_the_frame_and_keeps_it(tmp_path: Path) -> None:
    brain = Brain(path=tmp_path / "store", capacity="4M")
    frame = pd.DataFrame({"x": np.arange(200_000.0)})
    brain["big"] = frame
    used = brain.used()
    with pytest.raises(BrainStoreFullError) as info:
        brain.assign("big", z=np.ones(200_000))
    message = str(info.value)
    assert 'a new part of frame "big"' in message and "first change of a frame stored whole" in message, message
    assert "brain-part" not in message, message
    pd.testing.assert_frame_equal(brain["big"], frame)
    assert brain.used() == used, "the refused change left a part behind"


def test_a_change_is_one_event_and_waits_for_the_lock(brain: Brain) -> None:
    brain["f"] = _sales()
    watcher = brain.watch()
    brain.assign("f", a=np.zeros(6))
    assert watcher.next_event(timeout=5) == ("set", brain.namespace, "f")
    assert watcher.next_event(timeout=0.2) is None
    # Inside update (which holds the lock) a change does not deadlock.
    with brain.lock("f"):
        brain.assign("f", b=np.ones(6))
    brain.update("f", lambda f: f.assign(c=1))
    assert list(brain["f"].columns)[-3:] == ["a", "b", "c"]


@pytest.mark.shm_only("another process opens the same store")
def test_readers_in_other_processes_see_every_version_whole(store_path: Path) -> None:
    """One process changes a frame over and over while another reads it:
    every read is one complete version (rows and columns agree)."""
    code = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd, sys, time
        from brain import Brain
        b = Brain(path={str(store_path)!r})
        deadline = time.time() + 4
        reads = 0
        while time.time() < deadline:
            f = b["f"]
            n = len(f)
            assert (f["v"].to_numpy() == np.arange(n)).all(), "rows of mixed versions"
            for c in f.columns[1:]:
                assert (f[c].to_numpy() == int(c[1:])).all(), f"column {{c}} torn"
            reads += 1
        print(reads)
        """
    )
    writer = Brain(path=str(store_path))
    writer["f"] = pd.DataFrame({"v": np.arange(100)})
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        i = 0
        while reader.poll() is None:
            i += 1
            rows = len(writer["f"])
            writer.append("f", pd.DataFrame({"v": np.arange(rows, rows + 50), **{
                c: np.full(50, int(c[1:])) for c in writer["f"].columns[1:]
            }}))
            writer.assign("f", **{f"c{i}": np.full(rows + 50, i)})
            if i % 7 == 0:
                writer.compact("f")
            if i % 5 == 0:
                writer.drop("f", [c for c in writer["f"].columns[1:]][:2])
        out, _ = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0
    assert int(out) > 10 and i > 10


@pytest.mark.shm_only("a writer process is killed")
def test_a_writer_killed_mid_change_leaves_the_old_version_whole(store_path: Path) -> None:
    """SIGKILL at random moments of assign, append, drop and compact: the
    frame is always one whole version, and gc gives back what was left."""
    brain = Brain(path=str(store_path))
    brain["f"] = pd.DataFrame({"v": np.arange(200_000)})
    code = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from brain import Brain
        b = Brain(path={str(store_path)!r})
        i = 0
        while True:
            i += 1
            n = len(b.get("f", columns=["v"]))
            b.append("f", pd.DataFrame({{"v": np.arange(n, n + 1000), **{{c: np.full(1000, int(c[1:])) for c in b["f"].columns[1:]}}}}))
            b.assign("f", **{{f"c{{i}}": np.full(n + 1000, i)}})
            if i % 3 == 0:
                b.drop("f", list(b["f"].columns[1:2]))
            if i % 4 == 0:
                b.compact("f")
        """
    )
    rng = np.random.default_rng(7)
    for _ in range(12):
        child = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.6 + rng.random() * 0.6)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        f = brain["f"]
        assert (f["v"].to_numpy() == np.arange(len(f))).all()
        for c in f.columns[1:]:
            assert (f[c].to_numpy() == int(c[1:])).all()
        brain.store.gc()
        report = brain.store.fsck()
        assert report["broken_frames"] == [] and report["unreferenced_frame_parts"] == 0, report


def test_dump_and_restore_keep_a_changed_frame(brain: Brain, tmp_path: Path) -> None:
    frame = _sales()
    brain["f"] = frame
    brain.assign("f", extra=np.arange(6))
    brain.append("f", frame.assign(extra=np.arange(6)))
    expected = brain["f"]
    dumped = brain.dump(tmp_path / "dump")
    del brain["f"]
    restored = brain.restore(tmp_path / "dump")
    pd.testing.assert_frame_equal(brain["f"], expected)
    assert brain.names() == ["f"]
    # Counted and listed as names: the frame once, its size that of its parts too.
    assert dumped["objects"] == restored["restored"] == 1
    listed = Brain.list_dump(tmp_path / "dump")["objects"]
    assert [o["name"] for o in listed] == ["f"]
    assert listed[0]["size"] == dumped["payload_bytes"]
    # Listed as metadata shows it: its writer's codec, a UTC datetime.
    assert listed[0]["codec"] == brain.metadata("f")["codec"] == "pandas"
    created = listed[0]["created"]
    assert created.tzinfo == dt.timezone.utc
    assert created <= brain.metadata("f")["created"], "restored after it was dumped"


class FrameMatchesPandas(RuleBasedStateMachine):
    """Random assigns, drops, appends, compactions and projections on a
    stored frame and on a pandas model give the same frame."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.url = new_store_url(backend, "frames")
        self.brain = Brain(url=self.url)
        self.model = pd.DataFrame({"c0": np.arange(3, dtype=np.int64)})
        self.brain["f"] = self.model
        self.next = 1

    def teardown(self) -> None:
        self.brain.close()
        remove_store(self.url)

    @rule(value=st.integers(-5, 5))
    def assign_new(self, value: int) -> None:
        name = f"c{self.next}"
        self.next += 1
        column = np.full(len(self.model), value, dtype=np.int64)
        self.brain.assign("f", **{name: column})
        self.model = self.model.assign(**{name: column})

    @rule(data=st.data())
    def assign_existing(self, data: st.DataObject) -> None:
        if not len(self.model.columns):
            return
        name = data.draw(st.sampled_from(list(self.model.columns)))
        column = np.arange(len(self.model), dtype=np.float64)
        self.brain.assign("f", **{name: column})
        self.model = self.model.assign(**{name: column})

    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        if len(self.model.columns) < 2:
            return
        name = data.draw(st.sampled_from(list(self.model.columns)))
        self.brain.drop("f", [name])
        self.model = self.model.drop(columns=[name])

    @rule(rows=st.integers(0, 4))
    def append(self, rows: int) -> None:
        more = pd.DataFrame(
            {c: np.arange(rows).astype(self.model[c].dtype) for c in self.model.columns}
        )
        self.brain.append("f", more)
        self.model = pd.concat([self.model, more], ignore_index=True)

    @rule()
    def compact(self) -> None:
        self.brain.compact("f")

    @rule(data=st.data())
    def project(self, data: st.DataObject) -> None:
        columns = data.draw(st.lists(st.sampled_from(list(self.model.columns)), unique=True, max_size=3))
        pd.testing.assert_frame_equal(self.brain.get("f", columns=columns), self.model[columns])

    @invariant()
    def same_frame(self) -> None:
        pd.testing.assert_frame_equal(self.brain["f"], self.model)


@pytest.mark.parametrize("backend", ["shm", "memory"])
def test_a_stored_frame_changes_as_a_pandas_model_does(backend: str) -> None:
    run_state_machine_as_test(
        lambda: FrameMatchesPandas(backend),
        settings=settings(
            max_examples=25, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )


@pytest.mark.shm_only("writers in other processes open the same store")
def test_changes_from_two_processes_are_serialised(store_path: Path) -> None:
    """Two processes append to one frame and add columns at once: no change is lost."""
    brain = Brain(path=str(store_path))
    brain["f"] = pd.DataFrame({"v": np.arange(10)})
    code = textwrap.dedent(
        f"""
        import sys, numpy as np, pandas as pd
        from brain import Brain
        b = Brain(path={str(store_path)!r})
        me = sys.argv[1]
        for i in range(15):
            b.append("f", pd.DataFrame({{"v": np.full(3, -1)}}))
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(i)]) for i in range(2)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    assert len(brain["f"]) == 10 + 2 * 15 * 3
    assert (brain["f"]["v"].to_numpy() == -1).sum() == 90


@pytest.mark.shm_only("`brain sync` is another process, mirroring the store it opens by path")
def test_brain_sync_mirrors_a_changed_frame(brain: Brain, tmp_path: Path) -> None:
    binary = Path(__file__).resolve().parents[2] / "target" / "debug" / "brain"
    assert binary.exists(), f"{binary} is missing: build it with `cargo build --bins` (make test does)"
    mirror = tmp_path / "mirror"
    log = (tmp_path / "sync.log").open("wb")
    sync = subprocess.Popen([str(binary), "--store", brain.path, "sync", "--to", str(mirror)], stdout=log, stderr=log)
    try:
        brain["f"] = _sales()
        brain.assign("f", x=np.arange(6))
        brain.append("f", _sales().assign(x=np.arange(6)))
        brain.drop("f", ["qty"])
        expected = brain["f"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (mirror / "MANIFEST.json").exists():
                url = new_store_url("shm", "sync-restore")
                try:
                    restored = Brain(url=url, persist=mirror)
                    try:
                        got = restored.get("f")
                    except BrainError:
                        got = None  # the mirror has the manifest, not yet every part
                    restored.close()
                finally:
                    remove_store(url)
                if got is not None and got.equals(expected):
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"sync did not mirror the changed frame within 30 s: {(tmp_path / 'sync.log').read_text()}")
    finally:
        sync.send_signal(signal.SIGKILL)
        sync.wait()
        log.close()


@pytest.mark.shm_only("counts the store's objects with fsck")
def test_restoring_over_a_changed_frame_leaves_no_part_behind(brain: Brain, tmp_path: Path) -> None:
    brain["f"] = _sales()
    brain.assign("f", x=np.arange(6))
    dumped = brain["f"]
    brain.dump(tmp_path / "dump")
    brain.assign("f", y=np.ones(6))
    changed = brain["f"]
    # Skipped: the frame stays as it is, and none of the dump's parts comes in.
    report = brain.restore(tmp_path / "dump", on_conflict="skip")
    assert report["skipped"] == 1
    pd.testing.assert_frame_equal(brain["f"], changed)
    assert brain.store.fsck()["unreferenced_frame_parts"] == 0
    # Overwritten: the dump's frame, and the changed frame's parts are gone.
    brain.restore(tmp_path / "dump", on_conflict="overwrite")
    pd.testing.assert_frame_equal(brain["f"], dumped)
    fsck = brain.store.fsck()
    assert fsck["unreferenced_frame_parts"] == 0 and fsck["objects"] == 3, fsck


@pytest.mark.shm_only("counts the store's objects with fsck")
def test_a_frame_deleted_under_its_lock_takes_its_parts(brain: Brain) -> None:
    brain["f"] = _sales()
    brain.assign("f", x=np.arange(6))
    with brain.lock("f"):
        del brain["f"]
    assert brain.store.fsck()["objects"] == 0


def test_rows_with_nulls_make_a_column_nullable(brain: Brain) -> None:
    schema = pa.schema([pa.field("x", pa.int64(), nullable=False)])
    brain["t"] = pa.table({"x": [1, 2]}, schema=schema)
    brain.append("t", pa.table({"x": [None]}, schema=pa.schema([pa.field("x", pa.int64())])))
    got = brain.get("t", as_arrow=True)
    assert got.schema.field("x").nullable and got.column("x").to_pylist() == [1, 2, None]


def test_appended_rows_keep_the_columns_missing_values(brain: Brain) -> None:
    # A column keeps one kind of missing value: NaN stays NaN, None None.
    nan = float("nan")
    brain["f"] = pd.DataFrame({"s": pd.Series(["a", nan], dtype=object)})
    brain.append("f", pd.DataFrame({"s": pd.Series(["b", nan], dtype=object)}))
    assert [v if v == v else "NaN" for v in brain["f"]["s"]] == ["a", "NaN", "b", "NaN"]
    with pytest.raises(TypeError, match="missing values in column 's' are None, the frame's NaN"):
        brain.append("f", pd.DataFrame({"s": pd.Series(["c", None], dtype=object)}))
    assert len(brain["f"]) == 4
    # A column with nothing missing yet takes the new rows' kind.
    brain["g"] = pd.DataFrame({"s": pd.Series(["a", "b"], dtype=object)})
    brain.append("g", pd.DataFrame({"s": pd.Series(["c", None], dtype=object)}))
    assert list(brain["g"]["s"]) == ["a", "b", "c", None]
    with pytest.raises(TypeError, match="are NaN, the frame's None"):
        brain.append("g", pd.DataFrame({"s": pd.Series(["d", nan], dtype=object)}))
    with pytest.raises(TypeError, match="of mixed kinds"):
        brain.append("g", pd.DataFrame({"s": pd.Series([None, nan], dtype=object)}))
    # A column of numbers keeps its type whatever the new rows' objects.
    for stored in ([1.5, 2.5], [1.5, nan]):
        brain["n"] = pd.DataFrame({"x": stored})
        brain.append("n", pd.DataFrame({"x": pd.Series([3.5, nan], dtype=object)}))
        assert brain["n"]["x"].dtype == np.float64
