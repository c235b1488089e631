"""A frame read from brain behaves like any other pandas frame under copy-on-write.

Its columns point into shared memory and are read-only; pandas' in-place
idioms must work on it all the same, copy only the column they change, and
leave the stored frame, other readers and earlier views as they were.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from brain import Brain
from _helpers import MAPPED_MIN, assert_array_zero_copy

N = 20_000  # rows: each numeric column is larger than MAPPED_MIN, so it is a view of the mapping

PANDAS_2 = int(pd.__version__.split(".")[0]) < 3
# pandas 3 always copies on write; pandas 2 only when told to (see the pandas 2 tests at the end).
COPY_ON_WRITE = not PANDAS_2 or pd.options.mode.copy_on_write is True
copy_on_write = pytest.mark.skipif(not COPY_ON_WRITE, reason="pandas 2 with copy-on-write off: frames from brain are read-only")


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "x": rng.random(N),
            "y": np.arange(N, dtype="f8"),
            "n": np.arange(N, dtype="i8"),
            "flag": np.arange(N) % 2 == 0,
            "s": pd.array([f"s{i % 97}" for i in range(N)], dtype="str"),
            "c": pd.Categorical(np.array(["lo", "hi"])[np.arange(N) % 2]),
            "I": pd.array(np.where(np.arange(N) % 5 == 0, None, np.arange(N)), dtype="Int64"),
            "t": pd.date_range("2026-01-01", periods=N, freq="min", tz="UTC"),
            "d": pd.to_timedelta(np.arange(N), unit="s"),
        }
    )


def _setitem(target: Any, key: Any, value: Any) -> None:
    target[key] = value


def _imul(df: pd.DataFrame) -> None:
    df["y"] *= 2


def _iadd_series(df: pd.DataFrame) -> None:
    df["n"] += 1


def _reset_then_set(df: pd.DataFrame) -> None:
    fresh = df.reset_index(drop=True)
    fresh.loc[0, "x"] = 3.0
    df["x"] = fresh["x"]


# Each idiom changes its frame in place; run on a frame read from brain and
# on a private copy, the two must end equal.
IDIOMS: dict[str, Callable[[pd.DataFrame], Any]] = {
    "loc with a mask": lambda df: _setitem(df.loc, (df.x > 0.5, "y"), 0.0),
    "loc one cell of an int column": lambda df: _setitem(df.loc, (3, "n"), -1),
    "iloc one cell": lambda df: _setitem(df.iloc, (0, 1), 5.0),
    "iloc a slice of rows, every column": lambda df: _setitem(df.iloc, (slice(0, 3), slice(0, 2)), 1.5),
    "at": lambda df: _setitem(df.at, (7, "x"), 0.25),
    "loc a bool column": lambda df: _setitem(df.loc, (0, "flag"), False),
    "loc a categorical": lambda df: _setitem(df.loc, (0, "c"), "lo"),
    "loc a nullable Int64": lambda df: _setitem(df.loc, (0, "I"), 42),
    "loc a tz datetime": lambda df: _setitem(df.loc, (0, "t"), pd.Timestamp("2030-01-01", tz="UTC")),
    "loc a timedelta": lambda df: _setitem(df.loc, (0, "d"), pd.Timedelta("1D")),
    "loc a str column": lambda df: _setitem(df.loc, (0, "s"), "changed"),
    "df[col] *= 2": _imul,
    "df[col] += 1": _iadd_series,
    "fillna inplace": lambda df: df.fillna({"I": 0}, inplace=True),
    "sort_values inplace": lambda df: df.sort_values("x", inplace=True),
    "add a column": lambda df: _setitem(df, "new", df["x"] * 2),
    "replace a column": lambda df: _setitem(df, "x", 1.0),
    "drop a column": lambda df: df.drop(columns=["y"], inplace=True),
    "del a column": lambda df: df.__delitem__("y"),
    "replace inplace": lambda df: df.replace({"y": {1.0: -1.0}}, inplace=True),
    "clip inplace": lambda df: df[["x", "y"]].clip(0.2, 0.8),
    "where inplace": lambda df: df.where(df.notna(), inplace=True),
    "mask inplace on numbers": lambda df: _setitem(df, "x", df["x"].mask(df["x"] > 0.5, 0.0)),
    "update": lambda df: df.update(pd.DataFrame({"x": [9.0, 8.0]})),
    "reset_index then loc": lambda df: _reset_then_set(df),
}


@copy_on_write
@pytest.mark.parametrize("idiom", IDIOMS.values(), ids=IDIOMS.keys())
def test_in_place_idioms_work_and_never_touch_the_store(brain: Brain, idiom: Callable[[pd.DataFrame], Any]) -> None:
    original = frame()
    brain["df"] = original
    got = brain["df"]
    before = got["x"]  # a view taken before the change: it must keep the stored values
    expected = original.copy()
    with warnings.catch_warnings():
        # pandas 3.1 deprecates the inplace= keyword of some methods; they still work
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        idiom(expected)
        idiom(got)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_series_equal(before, original["x"], check_exact=True)
    pd.testing.assert_frame_equal(brain["df"], original, check_exact=True)


@copy_on_write
def test_the_first_change_copies_that_column_only(brain: Brain) -> None:
    brain["df"] = frame()
    got = brain["df"]
    for name in ("x", "y", "n"):
        assert_array_zero_copy(brain, "df", got[name].to_numpy())
    got.loc[got.x > 0.5, "y"] = 0.0
    x, y, n = (got[name].to_numpy() for name in ("x", "y", "n"))
    assert_array_zero_copy(brain, "df", x)  # untouched columns still point into the store
    assert_array_zero_copy(brain, "df", n)
    view = brain.view("df")
    address = y.__array_interface__["data"][0]
    assert not view.address <= address < view.address + len(view), "the changed column still points into the store"
    y_address = address
    got.loc[0, "y"] = 1.0  # the second change writes into the copy: no new copy
    assert got["y"].to_numpy().__array_interface__["data"][0] == y_address


@copy_on_write
def test_a_series_read_from_brain_changes_in_place(brain: Brain) -> None:
    series = pd.Series(np.arange(N, dtype="f8"), name="v")
    brain["s"] = series
    got = brain["s"]
    got.iloc[0] = -1.0
    got.loc[got > N - 3] = 0.0
    got *= 2
    assert got.iloc[0] == -2.0 and got.iloc[-1] == 0.0
    pd.testing.assert_series_equal(brain["s"], series, check_exact=True)


@copy_on_write
def test_frames_read_as_pandas_from_other_writers_change_in_place(brain: Brain) -> None:
    brain["pl"] = pl.DataFrame({"x": np.arange(N, dtype="f8"), "s": [str(i) for i in range(N)]})
    got = brain.get("pl", as_pandas=True)
    assert_array_zero_copy(brain, "pl", got["x"].to_numpy())
    got.loc[got.x > 10, "x"] = 0.0
    assert got["x"].sum() == sum(range(11))
    assert brain["pl"]["x"].sum() == N * (N - 1) / 2


@copy_on_write
def test_a_frame_of_numbered_columns_changes_in_place(brain: Brain) -> None:
    # pd.DataFrame(ndarray): labels 0, 1, ... as a RangeIndex, stored as Arrow.
    original = pd.DataFrame(np.arange(2.0 * N).reshape(N, 2))
    brain["m"] = original
    assert brain.metadata("m")["codec"] == "pandas"
    got = brain["m"]
    assert_array_zero_copy(brain, "m", got[0].to_numpy())
    got.iloc[0, 0] = 9
    got[1] *= 2
    expected = original.copy()
    expected.iloc[0, 0] = 9
    expected[1] *= 2
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(brain["m"], original, check_exact=True)


# Frames and Series brain pickles (Arrow cannot keep their labels as they are).
PICKLED: dict[str, Callable[[], Any]] = {
    "mixed labels": lambda: pd.DataFrame({"a": np.arange(N, dtype="f8"), 1: np.arange(N, dtype="i8")}),
    "a Series named by a tuple": lambda: pd.Series(np.arange(N, dtype="f8"), name=("a", "b")),
}


@copy_on_write
@pytest.mark.parametrize("make", PICKLED.values(), ids=PICKLED.keys())
def test_pickled_frames_change_in_place_too(brain: Brain, make: Callable[[], Any]) -> None:
    original = make()
    brain["p"] = original
    assert brain.metadata("p")["codec"] == "pickle5"
    got, expected = brain["p"], original.copy()
    for target in (got, expected):
        if isinstance(target, pd.DataFrame):
            target.iloc[0, 0] = 9
            target.fillna(0, inplace=True)
            target[target.columns[1]] *= 2
        else:
            target.iloc[0] = 9
            target *= 2
    if isinstance(original, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        pd.testing.assert_frame_equal(brain["p"], original, check_exact=True)
    else:
        pd.testing.assert_series_equal(got, expected, check_exact=True)
        pd.testing.assert_series_equal(brain["p"], original, check_exact=True)


@copy_on_write
def test_frames_inside_a_stored_container_change_in_place(brain: Brain) -> None:
    # brain-plasma code often stores a dict of frames.
    sales = pd.DataFrame({"n": np.arange(N, dtype="f8")})
    series = pd.Series(np.arange(N, dtype="f8"))
    brain["many"] = {"sales": sales, "more": [sales.copy(), (1, {"s": series})]}
    got = brain["many"]
    got["sales"].loc[0, "n"] = 5.0
    got["more"][0]["n"] *= 2
    got["more"][1][1]["s"].iloc[0] = 7.0
    assert got["sales"].loc[0, "n"] == 5.0 and got["more"][1][1]["s"].iloc[0] == 7.0
    stored = brain["many"]
    pd.testing.assert_frame_equal(stored["sales"], sales)
    pd.testing.assert_frame_equal(stored["more"][0], sales)
    pd.testing.assert_series_equal(stored["more"][1][1]["s"], series)


def test_arrays_stay_read_only(brain: Brain) -> None:
    # numpy has no copy-on-write: an array read from brain refuses writes.
    brain["a"] = np.arange(N, dtype="f8")
    got = brain["a"]
    with pytest.raises(ValueError, match="read-only"):
        got[0] = 1.0
    mine = got.copy()
    mine[0] = 1.0
    assert brain["a"][0] == 0.0


def _read_column_sum(path: str, name: str, column: str) -> float:
    return float(Brain(path=path)[name][column].sum())


@copy_on_write
@pytest.mark.shm_only("another process reads the frame that this one changed: a memory store is only this process's")
def test_other_processes_still_see_the_stored_frame(brain: Brain) -> None:
    original = frame()
    brain["df"] = original
    got = brain["df"]
    got.loc[:, "y"] = 0.0
    got["x"] *= 0
    got.fillna({"I": 0}, inplace=True)
    assert got["y"].sum() == 0 and got["x"].sum() == 0
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        seen = pool.apply(_read_column_sum, (brain.path, "df", "y"))
    assert seen == original["y"].sum()
    assert MAPPED_MIN < original["y"].nbytes



@pytest.mark.skipif(not PANDAS_2, reason="pandas 3 always copies on write")
def test_pandas_2_without_copy_on_write_keeps_frames_read_only(brain: Brain) -> None:
    with pd.option_context("mode.copy_on_write", False):
        brain["df"] = frame()
        got = brain["df"]
        with pytest.raises(ValueError, match="read-only"):
            got.loc[0, "x"] = 1.0
        mine = got.copy()
        mine.loc[0, "x"] = 1.0
        assert brain["df"]["x"].iloc[0] == frame()["x"].iloc[0]


@pytest.mark.skipif(not PANDAS_2, reason="pandas 3 always copies on write")
@pytest.mark.parametrize("idiom", IDIOMS.values(), ids=IDIOMS.keys())
def test_pandas_2_with_copy_on_write_on_behaves_as_pandas_3(brain: Brain, idiom: Callable[[pd.DataFrame], Any]) -> None:
    with pd.option_context("mode.copy_on_write", True):
        test_in_place_idioms_work_and_never_touch_the_store(brain, idiom)
