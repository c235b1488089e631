"""Reading a stored Arrow file again decodes its record batches against the
schema parsed on an earlier read: the table must be the one pyarrow's whole
reader makes, and every file the shortcut cannot read must still be read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (the submodule is not loaded by `import pyarrow`)
import pytest

from brain import Brain, _codecs
from _helpers import assert_arrow_zero_copy

N = 20_000


def _whole_reader(brain: Brain, name: str) -> Any:
    return pa.ipc.open_file(pa.py_buffer(brain.view(name))).read_all()


def _shortcut(brain: Brain, name: str) -> Any:
    """The batches the shortcut reads of a stored file, or None."""
    return _codecs._read_known_schema(pa, pa.py_buffer(brain.view(name)))


def _several_batches() -> pa.Table:
    parts = [pa.table({"a": np.arange(i, i + N, dtype="i8"), "s": [f"x{j}" for j in range(N)]}) for i in range(3)]
    return pa.concat_tables(parts)


TABLES: dict[str, Any] = {
    "a pyarrow table": lambda: pa.table({"a": np.arange(N), "f": np.random.default_rng(0).random(N)}),
    "several record batches": _several_batches,
    "a record batch": lambda: pa.record_batch({"a": np.arange(N)}),
    "a pandas frame": lambda: pd.DataFrame({"x": np.arange(N, dtype="f8"), "s": ["a"] * N}),
    "nested types": lambda: pa.table({"l": pa.array([[1, 2]] * N), "st": pa.array([{"k": 1}] * N)}),
    "no rows": lambda: pa.table({"a": pa.array([], pa.int64())}),
}


@pytest.mark.parametrize("make", TABLES.values(), ids=TABLES.keys())
def test_a_second_read_takes_the_known_schema_and_gets_the_same_table(brain: Brain, make: Any) -> None:
    value = make()
    brain["t"] = value
    first = brain.get("t", as_arrow=True)  # the schema is parsed and kept
    assert _shortcut(brain, "t") is not None, "the second read did not take the known schema"
    second = brain.get("t", as_arrow=True)
    assert second.equals(first, check_metadata=True)
    assert second.schema.metadata == first.schema.metadata
    assert not any(key.startswith(b"brain.") for key in (second.schema.metadata or {}))
    whole = _whole_reader(brain, "t")
    assert _codecs.read_arrow(brain.view("t")).equals(whole, check_metadata=True)
    again = brain["t"]
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(again, value, check_exact=True)
    else:
        assert type(again) is type(value)
        assert again.equals(value)


def test_a_known_schema_reads_point_into_the_store(brain: Brain) -> None:
    brain["t"] = _several_batches()
    brain.get("t", as_arrow=True)
    table = brain.get("t", as_arrow=True)
    assert _shortcut(brain, "t") is not None
    assert len(table.to_batches()) == 3
    assert_arrow_zero_copy(brain, "t", table)


def test_dictionaries_take_the_whole_reader(brain: Brain) -> None:
    value = pa.table({"d": pa.array(["a", "b"] * (N // 2)).dictionary_encode()})
    brain["t"] = value
    for _ in range(2):
        assert _shortcut(brain, "t") is None
        assert brain.get("t", as_arrow=True).equals(value)


def _ipc_bytes(table: Any) -> bytes:
    sink = pa.BufferOutputStream()
    _codecs._write_ipc(pa, sink, table)
    return sink.getvalue().to_pybytes()


def test_a_magic_padded_to_64_bytes_as_arrow_rs_writes_it_is_read_by_the_known_schema() -> None:
    # A schema of its own: the other tests learn theirs.
    table = _several_batches().rename_columns(["padded_a", "padded_s"])
    payload = _ipc_bytes(table)
    padded = payload[:8] + bytes(56) + payload[8:]  # messages from byte 64, as arrow-rs aligns them
    assert _codecs._read_known_schema(pa, pa.py_buffer(padded)) is None  # learns the schema
    known = _codecs._read_known_schema(pa, pa.py_buffer(padded))
    assert known is not None
    assert pa.Table.from_batches(known[0]).equals(table)
    too_far = payload[:8] + bytes(64) + payload[8:]
    not_zeros = payload[:8] + bytes(28) + b"\x01" + bytes(27) + payload[8:]
    for odd in (too_far, not_zeros):
        assert _codecs._read_known_schema(pa, pa.py_buffer(odd)) is None


def test_a_damaged_file_with_a_known_schema_goes_to_the_whole_reader() -> None:
    payload = _ipc_bytes(_several_batches())
    assert _codecs._read_known_schema(pa, pa.py_buffer(payload)) is None  # learns the schema
    assert _codecs._read_known_schema(pa, pa.py_buffer(payload)) is not None
    schema_end = 16 + int.from_bytes(payload[12:16], "little")
    past_the_end = bytearray(payload)
    past_the_end[schema_end + 4 : schema_end + 8] = (len(payload) * 2).to_bytes(4, "little")
    garbled = bytearray(payload)
    garbled[schema_end + 8 : schema_end + 40] = b"\xab" * 32
    for damaged in (bytes(past_the_end), bytes(garbled), payload[: schema_end + 100], payload[:20]):
        assert _codecs._read_known_schema(pa, pa.py_buffer(damaged)) is None
    schema_garbled = bytearray(payload)
    schema_garbled[16:48] = b"\xcd" * 32  # a schema never seen: parsing it fails
    assert _codecs._read_known_schema(pa, pa.py_buffer(bytes(schema_garbled))) is None
