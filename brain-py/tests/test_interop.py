"""Rust and Python read each other's objects, across processes.

The Rust side is a real separate process: the end-to-end tests' helper
binary (`brain-test-helper`, which reads and writes Arrow record batches
through brain-core) and the `brain` command (raw bytes).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

import pytest

from brain import Brain, _codecs

pytestmark = pytest.mark.shm_only("a Rust process reads and writes the store: a memory store is only this process's")

TARGET = Path(__file__).resolve().parents[2] / "target" / "debug"
HELPER = TARGET / "brain-test-helper"
BRAIN = TARGET / "brain"


def run(program: Path, *args: str) -> bytes:
    assert program.exists(), f"{program} is missing: build it with `cargo build --bins` (make test does)"
    done = subprocess.run([str(program), *args], capture_output=True, timeout=60)
    assert done.returncode == 0, f"{program.name} {' '.join(args)} failed: {done.stderr.decode()}"
    return done.stdout


def helper(*args: str) -> str:
    """The Rust test helper: Arrow record batches through brain-core."""
    return run(HELPER, *args).decode()


def brain_command(*args: str) -> bytes:
    """The `brain` command."""
    return run(BRAIN, *args)


def digest(table: pa.Table) -> str:
    """The same digest the helper's `read-arrow` prints, computed by pyarrow."""
    lines = [f"rows {table.num_rows}"]
    for name, column in zip(table.column_names, table.columns):
        nulls = column.null_count
        if pa.types.is_float64(column.type):
            value = f"sum={pa.compute.sum(column).as_py() or 0.0:.6f}"
        elif pa.types.is_int64(column.type):
            value = f"sum={pa.compute.sum(column).as_py() or 0}"
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
            values = [v for v in column.to_pylist() if v is not None]
            quote = lambda v: "None" if v is None else f'Some("{v}")'  # noqa: E731 (Rust's Debug of Option<String>)
            value = f"first={quote(values[0] if values else None)} last={quote(values[-1] if values else None)}"
        else:
            value = f"type={column.type}"
        lines.append(f"column {name} nulls={nulls} {value}")
    return "\n".join(lines) + "\n"


def test_python_reads_record_batches_written_by_rust(brain: Brain) -> None:
    helper("write-arrow", brain.path, "default", "from-rust", "10001")
    table = brain["from-rust"]
    assert isinstance(table, pa.Table)
    assert table.schema.names == ["price", "qty", "sku"]
    assert table.num_rows == 10001
    assert table.column("sku")[0].as_py() == "sku-000000"
    assert table.column("qty").null_count == 2001
    assert digest(table) == helper("read-arrow", brain.path, "default", "from-rust")
    frame = brain.get("from-rust", as_arrow=True).to_pandas()
    assert frame["price"].iloc[-1] == 10000 * 0.25
    # arrow-rs pads the file's magic to 64 bytes: the reader that decodes
    # against a schema parsed before reads it too, not only pyarrow's whole reader.
    payload = pa.py_buffer(brain.view("from-rust"))
    _codecs._read_known_schema(pa, payload)
    known = _codecs._read_known_schema(pa, payload)
    assert known is not None
    assert pa.Table.from_batches(known[0]).to_pydict() == table.to_pydict()


def test_rust_reads_tables_written_by_python(brain: Brain) -> None:
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.random(5000), "n": pa.array([None, *range(4999)], pa.int64()), "s": [f"v{i}" for i in range(5000)]})
    frame = pd.DataFrame({"price": rng.random(3000), "units": rng.integers(0, 9, 3000), "sku": pd.array([f"k{i}" for i in range(3000)], dtype="str")})
    polars_frame = pl.DataFrame({"a": [1.5, 2.5, None], "b": ["p", "q", "r"]})
    brain["table"] = table
    brain["frame"] = frame
    brain["polars"] = polars_frame
    assert helper("read-arrow", brain.path, "default", "table") == digest(table)
    assert helper("read-arrow", brain.path, "default", "frame") == digest(pa.Table.from_pandas(frame, preserve_index=None))
    assert helper("read-arrow", brain.path, "default", "polars") == digest(polars_frame.to_arrow())


def test_byte_strings_cross_both_ways(brain: Brain, tmp_path: Path) -> None:
    payload = np.random.default_rng(5).bytes(3 * 1024 * 1024 + 17)
    brain["from-python"] = payload
    assert brain_command("--store", brain.path, "cat", "from-python") == payload
    source = tmp_path / "blob"
    source.write_bytes(payload[::-1])
    brain_command("--store", brain.path, "put", "from-rust", str(source))
    assert brain["from-rust"] == payload[::-1]
