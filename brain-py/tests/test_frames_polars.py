"""polars frames are stored in polars' own layout and read back without a conversion.

Strings and binary are stored as Arrow's string_view and binary_view, what
polars holds, so neither the write nor the read converts them; other
libraries convert when they read (see test_frames_matrix.py).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from brain import Brain, _codecs
from brain.exceptions import BrainUnsupportedObjectError
from _helpers import assert_arrow_zero_copy, assert_inside

N = 50_000


def strings_frame(n: int = N) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "short": [f"s{i % 1000}" for i in range(n)],  # up to 12 bytes: held in the views themselves
            "long": [f"a string longer than twelve bytes, number {i}" for i in range(n)],
            "blob": [bytes([i % 256]) * (i % 40) for i in range(n)],
            "x": np.arange(n, dtype="f8"),
        }
    )


def test_strings_and_binary_are_stored_as_views(brain: Brain) -> None:
    brain["p"] = strings_frame()
    schema = brain.get("p", as_arrow=True).schema
    assert schema.field("short").type == pa.string_view()
    assert schema.field("long").type == pa.string_view()
    assert schema.field("blob").type == pa.binary_view()
    assert schema.field("x").type == pa.float64()


def test_a_polars_frame_reads_back_without_copying_its_strings(brain: Brain) -> None:
    frame = strings_frame()
    brain["p"] = frame
    got = brain["p"]
    assert isinstance(got, pl.DataFrame)
    assert got.equals(frame) and got.schema == frame.schema
    # polars hands its own buffers to Arrow without copying: they must lie in the store.
    assert_arrow_zero_copy(brain, "p", got.to_arrow(compat_level=pl.CompatLevel.newest()))


def test_a_polars_series_of_strings_reads_back_zero_copy(brain: Brain) -> None:
    series = strings_frame()["long"]
    brain["s"] = series
    got = brain["s"]
    assert isinstance(got, pl.Series) and got.name == "long"
    assert got.equals(series)
    assert_arrow_zero_copy(brain, "s", got.to_frame().to_arrow(compat_level=pl.CompatLevel.newest()))


def test_a_slice_of_a_big_frame_stores_only_its_own_strings(brain: Brain) -> None:
    frame = strings_frame(200_000)
    brain["all"] = frame
    few = frame.slice(1000, 5)
    brain["few"] = few
    assert brain["few"].equals(few)
    assert len(brain.view("few")) < 10_000, "the slice carried its parent's string buffers into the store"
    picked = frame.filter(pl.col("long").str.ends_with("99999"))
    brain["picked"] = picked
    assert brain["picked"].equals(picked)
    assert len(brain.view("picked")) < 10_000


def test_a_frame_that_uses_its_buffers_is_not_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = strings_frame()
    monkeypatch.setattr(pl, "from_arrow", lambda *a, **k: pytest.fail("a frame without waste was rebuilt"))
    table, length = _codecs.polars_table(frame)
    assert table.schema.field("long").type == pa.string_view()
    assert length == _codecs.ipc_file_len(table)


def test_frames_in_the_older_large_string_layout_still_read(brain: Brain) -> None:
    frame = strings_frame(1000)
    table = _codecs._with_kind(frame.to_arrow(), b"frame")
    assert table.schema.field("long").type == pa.large_string()
    _codecs._write_arrow(brain.store, brain.namespace, "old", "polars", table, None)
    got = brain["old"]
    assert got.equals(frame) and got.schema == frame.schema


def test_types_arrow_has_not_are_pickled_exactly(brain: Brain) -> None:
    frame = pl.DataFrame({"big": pl.Series([2**100, None, -(2**90)], dtype=pl.Int128), "s": ["a", "b", None]})
    brain["p"] = frame
    assert brain.metadata("p")["codec"] == "pickle5"
    got = brain["p"]
    assert got.equals(frame) and got.schema == frame.schema


def test_object_columns_are_refused_not_stored_as_pointers(brain: Brain) -> None:
    # polars exports an Object column to Arrow as 8-byte pointers, which no
    # other process could use; nor can polars pickle it.
    frame = pl.DataFrame({"o": pl.Series([object(), None], dtype=pl.Object)})
    with pytest.raises(BrainUnsupportedObjectError, match="polars"):
        brain["p"] = frame
    nested = pl.DataFrame({"l": pl.Series([[1]], dtype=pl.List(pl.Int64))})
    assert not _codecs._polars_holds_objects(pl, nested.dtypes[0])
    assert _codecs._polars_holds_objects(pl, pl.Struct({"a": pl.List(pl.Object)}))
    assert "p" not in brain


def test_address_checks_see_copies(brain: Brain) -> None:
    # The zero-copy checks above must be able to fail: a copy lies outside the store.
    brain["p"] = strings_frame()
    copied = brain["p"].to_arrow(compat_level=pl.CompatLevel.newest())
    copied = pa.table({name: pa.array(copied.column(name).to_pylist(), copied.column(name).type) for name in copied.column_names})
    buffer = copied.column("long").chunks[0].buffers()[1]
    with pytest.raises(AssertionError, match="copied"):
        assert_inside(brain, "p", buffer.address, buffer.size)
