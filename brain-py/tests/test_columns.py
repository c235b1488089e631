"""Reading only some columns of a stored table: ``brain.get(name, columns=[...])``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from brain import Brain
from brain.exceptions import BrainColumnNotExistError, BrainError


def _sales() -> pd.DataFrame:
    index = pd.Index(["w", "x", "y", "z"], name="store")
    return pd.DataFrame(
        {
            "region": pd.Series(["north", "south", "east", "west"], index=index, dtype="str"),
            "price": np.array([1.5, 2.5, 3.5, 4.5]),
            "qty": np.array([10, 20, 30, 40], dtype=np.int64),
            # brain restores these dtypes itself (they are keyed by position).
            "note": pd.Series(["a", "b", None, "d"], index=index, dtype=object),
            "tags": pd.Series([[1], [2, 3], [], None], index=index, dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
        },
        index=index,
    )


def test_a_pandas_frame_gives_the_columns_asked_for_in_order_with_its_index(brain: Brain) -> None:
    frame = _sales()
    brain["sales"] = frame
    assert brain.store.get(brain.namespace, "sales").codec == "pandas"
    pd.testing.assert_frame_equal(brain["sales"], frame)
    picked = brain.get("sales", columns=["qty", "price"])
    pd.testing.assert_frame_equal(picked, frame[["qty", "price"]])
    # Columns whose dtype brain restores keep it when they move position.
    pd.testing.assert_frame_equal(brain.get("sales", columns=["tags", "note"]), frame[["tags", "note"]])
    pd.testing.assert_frame_equal(brain.get("sales", columns=[]), frame[[]])


def test_columns_are_zero_copy_views_of_the_store(brain: Brain, backend: str) -> None:
    brain["t"] = pa.table({"a": np.arange(100_000, dtype=np.int64), "b": np.ones(100_000)})
    stored = brain.store.get(brain.namespace, "t")
    start, end = stored.address, stored.address + stored.size
    table = brain.get("t", columns=["b"])
    assert table.column_names == ["b"]
    address = table.column("b").chunk(0).buffers()[1].address
    assert start <= address < end, "the column was copied out of the stored object"


def test_number_columns_of_a_pandas_frame_are_read_straight_from_the_store(brain: Brain, backend: str) -> None:
    rows = 50_000
    frame = pd.DataFrame(
        {
            "f": np.linspace(0, 1, rows),
            "i": np.arange(rows, dtype=np.int64),
            "u8": (np.arange(rows) % 200).astype(np.uint8),
            "f32": np.ones(rows, dtype=np.float32),
            "nan": np.where(np.arange(rows) % 7 == 0, np.nan, 1.0),
            "s": pd.Series(np.arange(rows).astype(str), dtype="str"),
        }
    )
    brain["n"] = frame
    stored = brain.store.get(brain.namespace, "n")
    start, end = stored.address, stored.address + stored.size
    for columns in (["i", "f"], ["u8", "f32", "i"], ["nan", "f"], ["s", "i"], ["f"]):
        picked = brain.get("n", columns=columns)
        pd.testing.assert_frame_equal(picked, frame[columns])
        # The same read through pyarrow's conversion.
        pd.testing.assert_frame_equal(
            picked, brain.get("n", columns=columns, as_arrow=True).to_pandas(), check_index_type=False
        )
    picked = brain.get("n", columns=["i", "f"])
    for label in ("i", "f"):
        values = picked[label].to_numpy()
        assert not values.flags.writeable
        assert start <= values.ctypes.data < end, f"column {label} was copied out of the stored object"
    # A write copies the one column it changes; the store keeps its values.
    picked.loc[0, "f"] = 42.0
    assert brain.get("n", columns=["f"])["f"].iloc[0] == 0.0
    # Columns of a frame changed in place come from its parts, zero-copy.
    brain["parts"] = frame
    added = np.arange(rows, dtype=np.float64) * 2
    brain.assign("parts", added=added)
    picked = brain.get("parts", columns=["added", "i"])
    pd.testing.assert_frame_equal(picked, frame.assign(added=added)[["added", "i"]])
    assert not picked["added"].to_numpy().flags.writeable
    # A frame indexed otherwise, or with rows added, goes the general way and reads the same.
    indexed = frame.set_index("i")
    brain["indexed"] = indexed
    pd.testing.assert_frame_equal(brain.get("indexed", columns=["f"]), indexed[["f"]])
    brain.append("n", frame.iloc[:10])
    whole = pd.concat([frame, frame.iloc[:10]], ignore_index=True)
    pd.testing.assert_frame_equal(brain.get("n", columns=["f", "u8"]), whole[["f", "u8"]])


def test_polars_and_arrow_tables_give_their_columns(brain: Brain) -> None:
    frame = pl.DataFrame({"x": [1, 2, 3], "s": ["p", "q", "r"], "y": [0.5, 1.5, 2.5]})
    brain["pl"] = frame
    assert brain.get("pl", columns=["s", "x"]).equals(frame.select("s", "x"))
    pd.testing.assert_frame_equal(
        brain.get("pl", columns=["y"], as_pandas=True), pd.DataFrame({"y": [0.5, 1.5, 2.5]})
    )
    brain["arrow"] = pa.table({"x": [1, 2], "y": [3, 4], "z": ["a", "b"]})
    assert brain.get("arrow", columns=["z", "x"]).equals(pa.table({"z": ["a", "b"], "x": [1, 2]}))
    assert brain.get("arrow", columns=["y"], as_polars=True).equals(pl.DataFrame({"y": [3, 4]}))


def test_a_pandas_frame_read_in_another_library_drops_its_index_as_before(brain: Brain) -> None:
    brain["sales"] = _sales()
    as_polars = brain.get("sales", columns=["price"], as_polars=True)
    assert as_polars.equals(pl.DataFrame({"price": [1.5, 2.5, 3.5, 4.5]}))
    as_arrow = brain.get("sales", columns=["price"], as_arrow=True)
    assert as_arrow.column_names == ["price", "store"]  # the index column, as a whole read gives it


def test_a_missing_column_is_named_with_the_columns_there_are(brain: Brain) -> None:
    brain["sales"] = _sales()
    with pytest.raises(BrainColumnNotExistError) as caught:
        brain.get("sales", columns=["price", "volume", "margin"])
    err = caught.value
    assert isinstance(err, KeyError) and isinstance(err, BrainError)
    assert str(err) == (
        "table 'sales' in namespace 'default' has no column 'volume', 'margin'; "
        "its columns are 'region', 'price', 'qty', 'note', 'tags'"
    )
    assert err.missing == ["volume", "margin"]
    assert err.columns == ["region", "price", "qty", "note", "tags"]
    assert (err.namespace, err.name) == ("default", "sales")
    wide = pa.table({f"c{i}": [i] for i in range(165)})
    brain["wide"] = wide
    with pytest.raises(BrainColumnNotExistError, match=r"'c19', and 145 more$"):
        brain.get("wide", columns=["nope"])


def test_a_column_named_twice_is_refused(brain: Brain) -> None:
    brain["sales"] = _sales()
    brain["polars"] = pl.DataFrame({"a": [1], "b": [2]})
    for name, columns, named in [
        ("sales", ["price", "price"], "'price'"),
        ("sales", ["qty", "price", "qty"], "'qty'"),
        ("polars", ["b", "a", "b"], "'b'"),
    ]:
        with pytest.raises(ValueError, match=f"columns= names {named} more than once"):
            brain.get(name, columns=columns)
    assert list(brain.get("sales", columns=["qty", "price"]).columns) == ["qty", "price"]


def test_columns_of_what_is_not_a_table_are_refused(brain: Brain) -> None:
    brain["array"] = np.arange(3)
    brain["series"] = pd.Series([1, 2], name="q")
    brain["mapping"] = {"a": 1}
    with pytest.raises(TypeError, match="'array' is stored as ndarray, not as a table"):
        brain.get("array", columns=["a"])
    with pytest.raises(TypeError, match="'series' is a Series"):
        brain.get("series", columns=["q"])
    with pytest.raises(TypeError, match="'mapping' is a pickled dict"):
        brain.get("mapping", columns=["a"])
    brain["t"] = pa.table({"x": [1]})
    with pytest.raises(TypeError, match="a list of column names, not str"):
        brain.get("t", columns="x")
    assert brain.get("absent", "default", columns=["x"]) == "default"


def test_a_pickled_frame_gives_its_columns_too(brain: Brain) -> None:
    # Labels of mixed kinds would become strings in Arrow: pickled.
    frame = pd.DataFrame({"a": [1.0, 2.0], 7: [3.0, 4.0]})
    brain["mixed"] = frame
    assert brain.store.get(brain.namespace, "mixed").codec == "pickle5"
    pd.testing.assert_frame_equal(brain.get("mixed", columns=[7, "a"]), frame[[7, "a"]])
    with pytest.raises(BrainColumnNotExistError, match="has no column 8; its columns are 'a', 7"):
        brain.get("mixed", columns=[8])


def test_a_frame_of_numbered_columns_is_a_table(brain: Brain) -> None:
    # pd.DataFrame(ndarray): a RangeIndex of labels, which Arrow gives back as
    # an int64 Index and brain makes a RangeIndex again.
    frame = pd.DataFrame(np.arange(6.0).reshape(2, 3))
    brain["numbered"] = frame
    assert brain.store.get(brain.namespace, "numbered").codec == "pandas"
    pd.testing.assert_frame_equal(brain["numbered"], frame)
    assert isinstance(brain.get("numbered", as_arrow=True), pa.Table)
    assert isinstance(brain.get("numbered", as_polars=True), pl.DataFrame)
    for columns in ([2, 0], [0, 2], [1]):
        pd.testing.assert_frame_equal(brain.get("numbered", columns=columns), frame[columns])
    with pytest.raises(BrainColumnNotExistError, match="has no column 7; its columns are '0', '1', '2'"):
        brain.get("numbered", columns=[7])
    # Changed in place, the labels stay a RangeIndex where pandas keeps one.
    brain.drop("numbered", [0])
    pd.testing.assert_frame_equal(brain["numbered"], frame.drop(columns=[0]))
    brain.append("numbered", frame.drop(columns=[0]))
    pd.testing.assert_frame_equal(brain["numbered"], pd.concat([frame.drop(columns=[0])] * 2, ignore_index=True))
    brain.assign("numbered", {5: [1.0, 2.0, 3.0, 4.0]})
    assert list(brain["numbered"].columns) == [1, 2, 5] and brain["numbered"].columns.dtype == "int64"
    with pytest.raises(TypeError, match="not of the kind of the labels"):
        brain.assign("numbered", z=[1, 2, 3, 4])


@pytest.mark.shm_only("another process writes the frame: a memory store is only this process's")
def test_columns_of_a_frame_another_process_wrote(store_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from brain import Brain
        Brain(path={str(store_path)!r})["frame"] = pd.DataFrame(
            {{"a": np.arange(1000), "b": np.arange(1000) * 0.5, "c": ["x"] * 1000}}
        )
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    reader = Brain(path=str(store_path))
    try:
        picked = reader.get("frame", columns=["c", "b"])
        assert list(picked.columns) == ["c", "b"]
        assert picked["b"].sum() == np.arange(1000).sum() * 0.5
        assert (picked["c"] == "x").all()
    finally:
        reader.close()
