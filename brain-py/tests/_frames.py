"""Every Arrow type, as each library writes it, for test_frames_matrix.py.

A case is one object, written by one library: a one-column frame whose
column ``v`` holds the type with a null where it can, or a whole frame
(pandas' indexes and labels). Next to each is what a reader in each other
library must get: the dtype of ``v`` as pandas and as polars show it, or
None where that library has no such type (reading it must then raise
BrainCodecError naming the column). The writers run in a child process
(``write_all``), so every read in the tests crosses processes.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from brain import Brain


# What pandas reads Arrow strings as: its str dtype from pandas 3, objects before.
STR = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"


@dataclass(frozen=True)
class Case:
    make: Callable[[], Any]
    pandas: str | None  # str(dtype) of v read as pandas; None: pandas cannot hold it
    polars: str | None  # str(dtype) of v read as polars; None: polars cannot read it
    pickled: bool = False  # Arrow cannot hold it exactly: stored with pickle, for its own library only


def _col(array: Any) -> Callable[[], pa.Table]:
    return lambda: pa.table({"v": array})


def _ints(arrow_type: pa.DataType) -> pa.Array:
    info = np.iinfo(arrow_type.to_pandas_dtype())
    return pa.array([int(info.min), None, int(info.max), 0], arrow_type)


TIMES = [0, None, 86_399, 1]
NESTED_TYPE = pa.list_(pa.struct([("a", pa.list_(pa.float64())), ("m", pa.map_(pa.string(), pa.list_(pa.binary())))]))

ARROW: dict[str, Case] = {
    "int8": Case(_col(_ints(pa.int8())), "Int8", "Int8"),
    "int16": Case(_col(_ints(pa.int16())), "Int16", "Int16"),
    "int32": Case(_col(_ints(pa.int32())), "Int32", "Int32"),
    "int64": Case(_col(_ints(pa.int64())), "Int64", "Int64"),
    "uint8": Case(_col(_ints(pa.uint8())), "UInt8", "UInt8"),
    "uint16": Case(_col(_ints(pa.uint16())), "UInt16", "UInt16"),
    "uint32": Case(_col(_ints(pa.uint32())), "UInt32", "UInt32"),
    "uint64": Case(_col(_ints(pa.uint64())), "UInt64", "UInt64"),
    "int64 beyond 2**53 with a null": Case(_col(pa.array([2**60 + 1, None, -(2**62) - 3], pa.int64())), "Int64", "Int64"),
    "int64 without nulls": Case(_col(pa.array([2**60 + 1, 2, -3], pa.int64())), "int64", "Int64"),
    "float16": Case(_col(pa.array(np.array([1.5, -2.0, 65504.0], np.float16))), "float16", "Float16"),
    "float32 with a null": Case(_col(pa.array([1.5, None, -0.0], pa.float32())), "float32", "Float32"),
    "float64 with NaN and a null": Case(_col(pa.array([1.5, None, float("nan"), float("inf")])), "double[pyarrow]", "Float64"),
    "bool with a null": Case(_col(pa.array([True, None, False])), "object", "Boolean"),
    "bool": Case(_col(pa.array([True, False, True])), "bool", "Boolean"),
    "decimal128": Case(_col(pa.array([decimal.Decimal("12345678.91"), None, decimal.Decimal("-0.01")], pa.decimal128(10, 2))), "object", "Decimal(precision=10, scale=2)"),
    "decimal256": Case(_col(pa.array([decimal.Decimal("1" * 35 + ".12345"), None], pa.decimal256(40, 5))), "object", None),
    "date32": Case(_col(pa.array([dt.date(2026, 12, 5), None, dt.date(1, 1, 1)], pa.date32())), "object", "Date"),
    "date64": Case(_col(pa.array([dt.date(2026, 12, 5), None, dt.date(1970, 1, 2)], pa.date64())), "object", "Datetime(time_unit='ms', time_zone=None)"),
    "time32[s]": Case(_col(pa.array(TIMES, pa.time32("s"))), "object", "Time"),
    "time32[ms]": Case(_col(pa.array([0, None, 86_399_999], pa.time32("ms"))), "object", "Time"),
    "time64[us]": Case(_col(pa.array([0, None, 86_399_999_999], pa.time64("us"))), "object", "Time"),
    "time64[ns]": Case(_col(pa.array([1, None, 86_399_999_999_999], pa.time64("ns"))), "time64[ns][pyarrow]", "Time"),
    "timestamp[s]": Case(_col(pa.array([-(10**11), None, 10**10], pa.timestamp("s"))), "datetime64[s]", "Datetime(time_unit='ms', time_zone=None)"),
    "timestamp[ms]": Case(_col(pa.array([-(10**14), None, 1], pa.timestamp("ms"))), "datetime64[ms]", "Datetime(time_unit='ms', time_zone=None)"),
    "timestamp[us]": Case(_col(pa.array([-(10**17), None, 1], pa.timestamp("us"))), "datetime64[us]", "Datetime(time_unit='us', time_zone=None)"),
    "timestamp[ns]": Case(_col(pa.array([-(10**18), None, 1], pa.timestamp("ns"))), "datetime64[ns]", "Datetime(time_unit='ns', time_zone=None)"),
    "timestamp[us, tz]": Case(_col(pa.array([0, None, 1_700_000_000_000_001], pa.timestamp("us", tz="Asia/Kolkata"))), "datetime64[us, Asia/Kolkata]", "Datetime(time_unit='us', time_zone='Asia/Kolkata')"),
    "timestamp[ns, UTC]": Case(_col(pa.array([0, None, 1], pa.timestamp("ns", tz="UTC"))), "datetime64[ns, UTC]", "Datetime(time_unit='ns', time_zone='UTC')"),
    "duration[s]": Case(_col(pa.array([-1, None, 10**9], pa.duration("s"))), "timedelta64[s]", "Duration(time_unit='ms')"),
    "duration[ms]": Case(_col(pa.array([-1, None, 10**12], pa.duration("ms"))), "timedelta64[ms]", "Duration(time_unit='ms')"),
    "duration[us]": Case(_col(pa.array([-1, None, 10**15], pa.duration("us"))), "timedelta64[us]", "Duration(time_unit='us')"),
    "duration[ns]": Case(_col(pa.array([-1, None, 10**18], pa.duration("ns"))), "timedelta64[ns]", "Duration(time_unit='ns')"),
    "month_day_nano_interval": Case(_col(pa.array([(1, 2, 3), None, (-1, 0, 10**12)], pa.month_day_nano_interval())), "object", None),
    "string": Case(_col(pa.array(["a", None, "ü 名 🧠", ""], pa.string())), STR, "String"),
    "large_string": Case(_col(pa.array(["a", None, "ü 名 🧠", ""], pa.large_string())), STR, "String"),
    "string_view": Case(_col(pa.array(["a", None, "a string longer than twelve bytes", ""], pa.string_view())), STR, "String"),
    "binary": Case(_col(pa.array([b"\x00", None, b"bytes", b""], pa.binary())), "object", "Binary"),
    "large_binary": Case(_col(pa.array([b"\x00", None, b"bytes", b""], pa.large_binary())), "object", "Binary"),
    "binary_view": Case(_col(pa.array([b"\x00", None, b"more than twelve bytes!", b""], pa.binary_view())), "object", "Binary"),
    "fixed_size_binary": Case(_col(pa.array([b"abc", None, b"\x00\x01\x02"], pa.binary(3))), "object", "Binary"),
    "dictionary of strings": Case(_col(pa.array(["north", None, "south", "north"]).dictionary_encode()), "category", "Categorical"),
    "dictionary int8 of large strings": Case(
        _col(pa.DictionaryArray.from_arrays(pa.array([1, 0, None, 1], pa.int8()), pa.array(["lo", "hi"], pa.large_string()))), "category", "Categorical"
    ),
    "dictionary of string views": Case(
        _col(pa.DictionaryArray.from_arrays(pa.array([1, 0, None], pa.uint32()), pa.array(["lo", "hi"], pa.string_view()))), "category", "Categorical"
    ),
    "dictionary of ints": Case(_col(pa.array([7, None, 7, 9]).dictionary_encode()), "category", "Int64"),
    "list": Case(_col(pa.array([[1, None, 2**60 + 1], None, []], pa.list_(pa.int64()))), "list<item: int64>[pyarrow]", "List(Int64)"),
    "large_list": Case(_col(pa.array([["a", None], None, []], pa.large_list(pa.string()))), "large_list<item: string>[pyarrow]", "List(String)"),
    "fixed_size_list": Case(_col(pa.array([[1.5, None], None, [3.0, 4.0]], pa.list_(pa.float64(), 2))), "fixed_size_list<item: double>[2][pyarrow]", "Array(Float64, shape=(2,))"),
    "list_view": Case(_col(pa.array([[1, 2], None, []], pa.list_view(pa.int32()))), "list_view<item: int32>[pyarrow]", None),
    "struct": Case(
        _col(pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}], pa.struct([("a", pa.int64()), ("b", pa.string())]))),
        "struct<a: int64, b: string>[pyarrow]",
        "Struct({'a': Int64, 'b': String})",
    ),
    "map": Case(_col(pa.array([[("k", 1), ("j", None)], None, []], pa.map_(pa.string(), pa.int64()))), "map<string, int64>[pyarrow]", "Map(String, Int64)"),
    "nested": Case(
        _col(pa.array([[{"a": [1.5, None], "m": [("x", [b"z", None])]}], None, [None]], NESTED_TYPE)),
        f"{NESTED_TYPE}[pyarrow]",
        "List(Struct({'a': List(Float64), 'm': Map(String, List(Binary))}))",
    ),
    "null": Case(_col(pa.nulls(3)), "object", "Null"),
    "sparse union": Case(
        _col(pa.UnionArray.from_sparse(pa.array([0, 1, 0], pa.int8()), [pa.array([1, None, 3]), pa.array(["a", "b", None])])),
        "sparse_union<0: int64=0, 1: string=1>[pyarrow]",
        None,
    ),
    "dense union": Case(
        _col(pa.UnionArray.from_dense(pa.array([0, 1, 0], pa.int8()), pa.array([0, 0, 1], pa.int32()), [pa.array([1, 2]), pa.array(["b"])])),
        "dense_union<0: int64=0, 1: string=1>[pyarrow]",
        None,
    ),
    "run-end encoded": Case(_col(pa.RunEndEncodedArray.from_arrays(pa.array([2, 3], pa.int32()), pa.array([1.5, None]))), "float64", None),
    "no columns": Case(lambda: pa.table({"v": [1, 2, 3]}).select([]), "", ""),
    "no rows": Case(lambda: pa.table({"v": pa.array([], pa.string_view())}), STR, "String"),
}


def _pd(values: Any, dtype: Any = None) -> Callable[[], pd.DataFrame]:
    return lambda: pd.DataFrame({"v": pd.array(values, dtype=dtype) if dtype is not None else values})


def _obj(values: list[Any]) -> Callable[[], pd.DataFrame]:
    return lambda: pd.DataFrame({"v": pd.Series(values, dtype=object)})


PANDAS: dict[str, Case] = {
    "int64": Case(_pd(np.array([-(2**63), 0, 2**63 - 1])), "int64", "Int64"),
    "uint64": Case(_pd(np.array([0, 2**64 - 1], np.uint64)), "uint64", "UInt64"),
    "float64 with NaN": Case(_pd(np.array([1.5, np.nan, -np.inf])), "float64", "Float64"),
    "float32": Case(_pd(np.array([1.5, -2.25], np.float32)), "float32", "Float32"),
    "float16": Case(_pd(np.array([1.5, -2.25], np.float16)), "float16", "Float16"),
    "bool": Case(_pd(np.array([True, False])), "bool", "Boolean"),
    **{
        f"nullable {name}": Case(_pd([1, None, 3], name), name, name)
        for name in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    },
    "nullable Int64 beyond 2**53": Case(_pd([2**60 + 1, None], "Int64"), "Int64", "Int64"),
    "nullable Float64 with NA and NaN": Case(lambda: pd.DataFrame({"v": pd.array([1.5, None, 0.0], dtype="Float64") / pd.array([1.0, 1.0, 0.0], dtype="Float64")}), "Float64", "Float64"),
    "nullable boolean": Case(_pd([True, None, False], "boolean"), "boolean", "Boolean"),
    "str": Case(_pd(["a", None, "名"], "str"), STR, "String"),
    "string[pyarrow]": Case(_pd(["a", None, "名"], "string[pyarrow]"), "string", "String"),
    "string[python]": Case(_pd(["a", None, "名"], "string[python]"), "string", "String"),
    "str, python storage": Case(_pd(["a", None, "名"], pd.StringDtype("python", na_value=np.nan)), STR, "String"),
    "object of str": Case(_obj(["a", None, "名"]), "object", "String"),
    "object of ints": Case(_obj([1, 2**62, -3]), "object", "Int64"),
    "object of Decimal": Case(_obj([decimal.Decimal("1.10"), None, decimal.Decimal("-2")]), "object", "Decimal(precision=3, scale=2)"),
    "object of dates": Case(_obj([dt.date(2026, 12, 5), None]), "object", "Date"),
    "object of times": Case(_obj([dt.time(1, 2, 3, 4), None]), "object", "Time"),
    "object of bytes": Case(_obj([b"\x00", None, b"xyz"]), "object", "Binary"),
    "category of str": Case(lambda: pd.DataFrame({"v": pd.Categorical(["b", None, "a", "b"])}), "category", "Categorical"),
    "ordered category": Case(lambda: pd.DataFrame({"v": pd.Categorical(["lo", "hi"], categories=["lo", "hi"], ordered=True)}), "category", "Categorical"),
    "category of ints": Case(lambda: pd.DataFrame({"v": pd.Categorical([3, None, 1])}), "category", "Int64"),
    "datetime64[ns]": Case(_pd(np.array(["2026-12-05T01:02:03.000000004", "NaT"], "M8[ns]")), "datetime64[ns]", "Datetime(time_unit='ns', time_zone=None)"),
    "datetime64[s]": Case(_pd(np.array(["0001-01-01", "9999-12-31"], "M8[s]")), "datetime64[s]", "Datetime(time_unit='ms', time_zone=None)"),
    "datetime64[us, tz]": Case(lambda: pd.DataFrame({"v": pd.date_range("2026-03-29", periods=3, freq="h", tz="Europe/Paris", unit="us")}), "datetime64[us, Europe/Paris]", "Datetime(time_unit='us', time_zone='Europe/Paris')"),
    "timedelta64[ns]": Case(_pd(np.array([1, -(2**62), "NaT"], "m8[ns]")), "timedelta64[ns]", "Duration(time_unit='ns')"),
    # polars keeps pandas' Arrow extension types as its own Extension dtype, over their storage.
    "period": Case(lambda: pd.DataFrame({"v": pd.period_range("2026-01", periods=3, freq="M")}), "period[M]", "Extension('pandas.period', Int64, '{\"freq\": \"M\"}')"),
    "interval": Case(
        lambda: pd.DataFrame({"v": pd.interval_range(0, 3)}),
        "interval[int64, right]",
        "Extension('pandas.interval', Struct({'left': Int64, 'right': Int64}), '{\"subtype\": \"int64\", \"closed\": \"right\"}')",
    ),
    "ArrowDtype list": Case(_pd([[1, None], None, []], pd.ArrowDtype(pa.list_(pa.int64()))), "list<item: int64>[pyarrow]", "List(Int64)"),
    "ArrowDtype struct": Case(_pd([{"a": 1}, None], pd.ArrowDtype(pa.struct([("a", pa.int64())]))), "struct<a: int64>[pyarrow]", "Struct({'a': Int64})"),
    "ArrowDtype decimal": Case(_pd([decimal.Decimal("1.5"), None], pd.ArrowDtype(pa.decimal128(5, 2))), "decimal128(5, 2)[pyarrow]", "Decimal(precision=5, scale=2)"),
    "ArrowDtype time64[ns]": Case(_pd([1, None], pd.ArrowDtype(pa.time64("ns"))), "time64[ns][pyarrow]", "Time"),
    "ArrowDtype binary": Case(_pd([b"x", None], pd.ArrowDtype(pa.binary())), "binary[pyarrow]", "Binary"),
    "ArrowDtype large_string": Case(_pd(["x", None], pd.ArrowDtype(pa.large_string())), "large_string[pyarrow]", "String"),
    "ArrowDtype int64 with a null": Case(_pd([2**60 + 1, None], pd.ArrowDtype(pa.int64())), "int64[pyarrow]", "Int64"),
    "complex": Case(_pd(np.array([1 + 2j, 0])), "complex128", None, pickled=True),
    "object of lists": Case(_obj([[1, 2], [], None]), "object", None, pickled=True),
    "object of dicts": Case(_obj([{"a": 1}, {"b": 2}]), "object", None, pickled=True),
    "mixed object": Case(_obj([1, "two", 3.0]), "object", None, pickled=True),
    "sparse": Case(lambda: pd.DataFrame({"v": pd.arrays.SparseArray([0, 0, 1])}), "Sparse[int64, 0]", None, pickled=True),
}

# Whole pandas frames: index kinds and column labels. Read as pandas they
# must be equal; as polars and as Arrow, their columns must be there.
PANDAS_FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "MultiIndex": lambda: pd.DataFrame(
        {"v": [1.5, 2.5, 3.5, 4.5]}, index=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "j"])
    ),
    "MultiIndex columns": lambda: pd.DataFrame(
        [[1, 2.5]], columns=pd.MultiIndex.from_tuples([("x", "a"), ("x", "b")], names=["top", "sub"])
    ),
    "int column labels": lambda: pd.DataFrame(np.arange(6).reshape(2, 3), columns=[30, 10, 20]),
    "float column labels": lambda: pd.DataFrame([[1, 2]], columns=[0.5, 1.5]),
    "datetime index with a frequency": lambda: pd.DataFrame(
        {"v": np.arange(4.0)}, index=pd.date_range("2026-12-01", periods=4, freq="D", tz="UTC", name="day")
    ),
    "object index of str": lambda: pd.DataFrame({"v": [1, 2]}, index=pd.Index(["x", "y"], dtype=object)),
    "named column axis": lambda: pd.DataFrame({"v": [1], "w": [2]}).rename_axis(columns="fields"),
    "empty frame with typed columns": lambda: pd.DataFrame(
        {"i": pd.array([], dtype="Int64"), "s": pd.array([], dtype="str"), "t": pd.to_datetime([]).tz_localize("UTC")}
    ),
    "no columns": lambda: pd.DataFrame(index=pd.RangeIndex(3)),
    "empty": lambda: pd.DataFrame(),
    "series": lambda: pd.Series(pd.array([1, None, 3], dtype="Int64"), name="counts", index=pd.Index(["a", "b", "c"], name="key")),
}


def _pl(values: Any, dtype: Any) -> Callable[[], pl.DataFrame]:
    return lambda: pl.DataFrame({"v": pl.Series(values, dtype=dtype)})


POLARS: dict[str, Case] = {
    **{
        name: Case(_pl([1, None, 3], getattr(pl, name)), name, name)
        for name in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    },
    "Int64 beyond 2**53": Case(_pl([2**60 + 1, None], pl.Int64), "Int64", "Int64"),
    "Float16": Case(_pl([1.5, None], pl.Float16), "float16", "Float16"),
    "Float32": Case(_pl([1.5, None], pl.Float32), "float32", "Float32"),
    "Float64 with NaN and a null": Case(_pl([1.5, None, float("nan")], pl.Float64), "double[pyarrow]", "Float64"),
    "Boolean": Case(_pl([True, None, False], pl.Boolean), "object", "Boolean"),
    "Decimal": Case(_pl([decimal.Decimal("1.25"), None], pl.Decimal(10, 2)), "object", "Decimal(precision=10, scale=2)"),
    "String": Case(_pl(["a", None, "a string longer than twelve bytes"], pl.String), STR, "String"),
    "Binary": Case(_pl([b"\x00", None, b"more than twelve bytes!"], pl.Binary), "object", "Binary"),
    "Date": Case(_pl([dt.date(2026, 12, 5), None], pl.Date), "object", "Date"),
    "Time": Case(_pl([dt.time(1, 2, 3, 4), None], pl.Time), "time64[ns][pyarrow]", "Time"),
    "Datetime[ms]": Case(_pl([dt.datetime(2026, 12, 5, 1, 2, 3), None], pl.Datetime("ms")), "datetime64[ms]", "Datetime(time_unit='ms', time_zone=None)"),
    "Datetime[ns]": Case(_pl([dt.datetime(2026, 12, 5), None], pl.Datetime("ns")), "datetime64[ns]", "Datetime(time_unit='ns', time_zone=None)"),
    "Datetime[us, tz]": Case(
        lambda: pl.DataFrame({"v": pl.Series([dt.datetime(2026, 12, 5), None], dtype=pl.Datetime("us")).dt.replace_time_zone("America/New_York")}),
        "datetime64[us, America/New_York]",
        "Datetime(time_unit='us', time_zone='America/New_York')",
    ),
    "Duration[us]": Case(_pl([dt.timedelta(days=-1, microseconds=5), None], pl.Duration("us")), "timedelta64[us]", "Duration(time_unit='us')"),
    "Categorical": Case(_pl(["north", None, "south", "north"], pl.Categorical), "category", "Categorical"),
    "Enum": Case(_pl(["lo", None, "hi"], pl.Enum(["lo", "mid", "hi"])), "category", "Enum(categories=['lo', 'mid', 'hi'])"),
    "List": Case(_pl([[1, None], None, []], pl.List(pl.Int64)), "large_list<item: int64>[pyarrow]", "List(Int64)"),
    "List of String": Case(_pl([["a", None], None], pl.List(pl.String)), "large_list<item: string_view>[pyarrow]", "List(String)"),
    "Array": Case(_pl([[1, 2], None], pl.Array(pl.Int64, 2)), "fixed_size_list<item: int64>[2][pyarrow]", "Array(Int64, shape=(2,))"),
    "Struct": Case(_pl([{"a": 1, "b": "x"}, None], pl.Struct({"a": pl.Int64, "b": pl.String})), "struct<a: int64, b: string_view>[pyarrow]", "Struct({'a': Int64, 'b': String})"),
    "Null": Case(_pl([None, None], pl.Null), "object", "Null"),
    "nested": Case(
        _pl([[{"a": [1.5, None], "s": "x"}], None], pl.List(pl.Struct({"a": pl.List(pl.Float64), "s": pl.String}))),
        "large_list<item: struct<a: large_list<item: double>, s: string_view>>[pyarrow]",
        "List(Struct({'a': List(Float64), 's': String}))",
    ),
    "Series": Case(lambda: pl.Series("v", ["x", None, "y"]), STR, "String"),
    "Int128": Case(_pl([2**100, None], pl.Int128), None, "Int128", pickled=True),
}

LIBRARIES: dict[str, dict[str, Case]] = {"pyarrow": ARROW, "pandas": PANDAS, "polars": POLARS}


def stored_name(library: str, case: str) -> str:
    return f"{library}/{case}"


def write_all(path: str) -> list[str]:
    """Writes every case of every library into the store at ``path``; the names written."""
    brain = Brain(path=path)
    names = []
    for library, cases in LIBRARIES.items():
        for case_id, case in cases.items():
            name = stored_name(library, case_id)
            brain[name] = case.make()
            names.append(name)
    for frame_id, make in PANDAS_FRAMES.items():
        name = stored_name("pandas frame", frame_id)
        brain[name] = make()
        names.append(name)
    brain.close()
    return names
