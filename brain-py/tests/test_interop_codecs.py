"""Every codec crosses between Python and Rust, both ways, across processes.

The Rust side is the end-to-end tests' helper (`brain-test-helper`, through
brain-core's typed calls) and the `brain` command (`brain info`). Arrays of
every kind of dtype (structured ones included), pickle-5 objects with
several out-of-band buffers, and Arrow tables with dictionaries and nulls
are written by one language and read, byte for byte, by the other.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from brain import Brain
from test_interop import BRAIN, brain_command, helper

pytestmark = pytest.mark.shm_only("a Rust process reads and writes the store: a memory store is only this process's")

# Arrays of every kind the ndarray codec holds: plain, structured (nested,
# titled, padded, with sub-arrays), Fortran order, zero-size and 0-d.
ARRAYS: dict[str, Any] = {
    "float64": np.linspace(0.0, 1.0, 7),
    "int8-2d": np.arange(12, dtype=np.int8).reshape(3, 4),
    "big-endian": np.arange(5, dtype=">i4"),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, -3.5j, 0], dtype=np.complex128),
    "complex64": np.array([1 + 2j], dtype=np.complex64),
    "datetime64": np.array(["2026-12-05T01:02:03.000000004", "1970-01-01"], dtype="datetime64[ns]"),
    "timedelta64": np.array([1, -2, 3], dtype="timedelta64[ms]"),
    "unicode": np.array(["ab", "ü", "brain🧠"], dtype="<U6"),
    "bytes": np.array([b"x", b"yz"], dtype="S3"),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    "zero-size": np.zeros((0, 3), dtype=np.int64),
    "zero-d": np.array(42.5),
    "structured": np.array(
        [(1, (2.5, 3.5), b"ab"), (4, (5.5, 6.5), b"cd")],
        dtype=[("id", "<i4"), ("xy", "<f8", (2,)), ("tag", "S2")],
    ),
    "structured-padded": np.zeros(3, dtype=np.dtype({"names": ["a", "b"], "formats": ["u1", "<i8"], "offsets": [0, 8], "itemsize": 16})),
    "structured-nested-titled": np.array(
        [((1, 2.0), "x")],
        dtype=[(("the point", "point"), [("i", "<i2"), ("f", "<f4")]), ("label", "<U3")],
    ),
    "structured-subarray-2d": np.ones(2, dtype=[("m", "<f8", (2, 3))]),
}


def descr_json(arr: Any) -> Any:
    """The dtype's description as the metadata JSON holds it (lists for tuples)."""
    return json.loads(json.dumps(np.lib.format.dtype_to_descr(arr.dtype)))


def rust_reads(brain: Brain, name: str) -> dict[str, str]:
    """What the Rust helper reads of an ndarray object: its metadata JSON, dtype and data (hex)."""
    lines = helper("read-ndarray", str(brain.path), brain.namespace, name).splitlines()
    return dict(line.split(" ", 1) for line in lines)


@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_rust_reads_arrays_written_by_python(brain: Brain, kind: str) -> None:
    arr = ARRAYS[kind]
    brain[kind] = arr
    read = rust_reads(brain, kind)
    meta = json.loads(read["meta"])
    assert meta["dtype"] == descr_json(arr)
    assert meta["shape"] == list(arr.shape)
    assert meta["fortran_order"] == (arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1)
    assert read["data"] == arr.tobytes(order="A").hex()
    # And Python reads back what it wrote.
    back = brain[kind]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.tobytes(order="A") == arr.tobytes(order="A")


@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_python_reads_arrays_written_by_rust(brain: Brain, kind: str, tmp_path: Path) -> None:
    arr = ARRAYS[kind]
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1)
    meta = {"dtype": descr_json(arr), "shape": list(arr.shape), "fortran_order": fortran}
    data = tmp_path / "data.bin"
    data.write_bytes(arr.tobytes(order="F" if fortran else "C"))
    helper("write-ndarray", str(brain.path), brain.namespace, kind, json.dumps(meta), str(data))
    back = brain[kind]
    assert back.dtype == arr.dtype, (back.dtype, arr.dtype)
    assert back.shape == arr.shape
    assert back.flags.writeable is False
    assert back.tobytes(order="A") == arr.tobytes(order="A")
    if arr.dtype.names is None and arr.dtype.kind not in "c":
        np.testing.assert_array_equal(back, arr)


def test_brain_info_shows_a_structured_dtype_written_by_python(brain: Brain) -> None:
    arr = ARRAYS["structured"]
    brain["record"] = arr
    info = json.loads(brain_command("--store", str(brain.path), "info", "record", "--json"))
    assert info["ndarray"]["shape"] == [2]
    assert info["ndarray"]["dtype"] == "[(\"id\", \"<i4\"), (\"xy\", \"<f8\", (2,)), (\"tag\", \"|S2\")]"
    text = brain_command("--store", str(brain.path), "info", "record").decode()
    assert "shape        (2,)" in text, text
    assert '("xy", "<f8", (2,))' in text, text


def test_rust_refuses_an_array_whose_data_does_not_fit_its_metadata(brain: Brain, tmp_path: Path) -> None:
    data = tmp_path / "short.bin"
    data.write_bytes(b"\0" * 11)
    meta = {"dtype": [["x", "<i4"], ["y", "<f8"]], "shape": [1], "fortran_order": False}
    with pytest.raises(AssertionError, match="has 12 bytes of data, not 11"):
        helper("write-ndarray", str(brain.path), brain.namespace, "short", json.dumps(meta), str(data))
    assert "short" not in brain


def pickled(thing: Any) -> tuple[bytes, list[bytes]]:
    """A pickle-5 stream and its out-of-band buffers, as brain stores them."""
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(thing, protocol=5, buffer_callback=buffers.append)
    return stream, [bytes(b.raw()) for b in buffers]


SEVERAL_BUFFERS = {
    "prices": np.linspace(0, 1, 1000),
    "ids": np.arange(300, dtype=np.int32),
    "empty": np.zeros(0),
    "label": "three buffers and a str",
}


def test_rust_reads_a_pickle_with_several_buffers_written_by_python(brain: Brain) -> None:
    brain["obj"] = SEVERAL_BUFFERS
    stream, buffers = pickled(SEVERAL_BUFFERS)
    lines = helper("read-pickle", str(brain.path), brain.namespace, "obj").splitlines()
    assert lines[0] == f"parts {1 + len(buffers)}"
    parts = [line.split(" ") for line in lines[1:]]
    assert [int(length) for _, length, *_ in parts] == [len(stream), *(len(b) for b in buffers)]
    assert [rest[0] if rest else "" for _, _, *rest in parts] == [stream.hex(), *(b.hex() for b in buffers)]


def test_python_reads_a_pickle_with_several_buffers_written_by_rust(brain: Brain, tmp_path: Path) -> None:
    stream, buffers = pickled(SEVERAL_BUFFERS)
    files = []
    for i, part in enumerate([stream, *buffers]):
        path = tmp_path / f"part{i}"
        path.write_bytes(part)
        files.append(str(path))
    helper("write-pickle", str(brain.path), brain.namespace, "obj", *files)
    back = brain["obj"]
    assert back.keys() == SEVERAL_BUFFERS.keys()
    for key, value in SEVERAL_BUFFERS.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(back[key], value)
        else:
            assert back[key] == value


def npy_of(brain: Brain, name: str, *flags: str) -> bytes:
    return brain_command("--store", str(brain.path), "cat", name, *flags)


# Field names NumPy's .npy header must get back as written: quotes, a
# backslash, Latin-1 and wider characters (the header is ASCII-escaped).
ODD_NAMES = np.zeros(2, dtype=[("it's \"q\"", "<i2"), ("back\\slash", "u1"), ("é🧠", "<f4", (2,))])


@pytest.mark.parametrize("kind", [*sorted(ARRAYS), "odd-names", "wide-header"])
def test_brain_cat_writes_an_array_as_a_npy_file(brain: Brain, kind: str) -> None:
    if kind == "odd-names":
        arr = ODD_NAMES
    elif kind == "wide-header":
        # More than 65,535 bytes of header: a version 2 .npy file.
        arr = np.zeros(1, dtype=[(f"field{i:05d}", "u1") for i in range(3500)])
    else:
        arr = ARRAYS[kind]
    brain[kind] = arr
    out = npy_of(brain, kind)
    assert len(out.split(b"\n", 1)[0]) % 64 == 63, "the data starts at a multiple of 64"
    back = np.load(io.BytesIO(out), allow_pickle=False, max_header_size=1 << 20)
    assert back.dtype == arr.dtype, (back.dtype, arr.dtype)
    assert back.shape == arr.shape
    assert back.flags.f_contiguous == arr.flags.f_contiguous
    if arr.dtype.names:
        # Field by field: NumPy leaves a padded dtype's padding as it finds it.
        for field in arr.dtype.names:
            assert back[field].tobytes() == arr[field].tobytes(), field
    else:
        assert back.tobytes(order="A") == arr.tobytes(order="A")


def test_brain_cat_writes_only_text_to_a_terminal(brain: Brain) -> None:
    brain["arr"] = ARRAYS["float64"]
    brain["text"] = "hello"
    brain["ascii"] = b"plain bytes\n"
    brain["escape"] = b"\x1b[2J"
    for name, shown in (("arr", None), ("text", b"hello"), ("ascii", b"plain bytes\r\n"), ("escape", None)):
        terminal, screen = os.openpty()
        try:
            done = subprocess.run(
                [str(BRAIN), "--store", str(brain.path), "cat", name], stdout=screen, stderr=subprocess.PIPE, timeout=60
            )
            os.close(screen)
            screen = -1
            output = b""
            while True:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:  # the terminal's other end closed
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(terminal)
            if screen >= 0:
                os.close(screen)
        if shown is None:
            assert done.returncode == 1 and output == b"", (name, output)
            message = done.stderr.decode()
            assert "is not text" in message and f"brain --store {brain.path} cat {name} > FILE" in message, message
        else:
            assert done.returncode == 0 and output == shown, (name, output, done.stderr)


def test_brain_cat_raw_writes_an_array_as_stored(brain: Brain) -> None:
    brain["a"] = ARRAYS["float64"]
    raw = npy_of(brain, "a", "--raw")
    info = json.loads(brain_command("--store", str(brain.path), "info", "a", "--json"))
    assert len(raw) == info["size"]
    assert int.from_bytes(raw[:4], "little") == 2, "the parts table: metadata, data"
    assert raw.endswith(ARRAYS["float64"].tobytes())


READ_ONLY = np.arange(5, dtype=np.int16)
READ_ONLY.setflags(write=False)
PICKLED: dict[str, Any] = {
    "several-buffers": SEVERAL_BUFFERS,
    "no-buffer": {"a": [1, 2.5, None], "b": ("x", b"y")},
    # A stream past 64 KiB is framed; the frames go, the objects stay.
    "framed": {"words": [f"w{i}" for i in range(40_000)], "arr": np.arange(3.0)},
    "read-only": {"ro": READ_ONLY},
    "large": {"big": np.random.default_rng(3).random(1_000_000)},
}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("kind", sorted(PICKLED))
def test_brain_cat_writes_a_pickled_object_as_one_plain_pickle(brain: Brain, kind: str) -> None:
    thing = PICKLED[kind]
    brain[kind] = thing
    out = npy_of(brain, kind)
    back = pickle.loads(out)
    assert same(back, thing), back
    # The Python unpickler holds a stream to its frames' lengths, as C's does not.
    assert same(pickle._loads(out), thing)  # type: ignore[attr-defined]
    if kind == "read-only":
        assert back["ro"].flags.writeable is False


def test_brain_cat_of_a_damaged_pickle_says_what_and_what_to_do(brain: Brain, tmp_path: Path) -> None:
    stream, buffers = pickled(SEVERAL_BUFFERS)
    files = []
    # One buffer fewer than the stream asks for.
    for i, part in enumerate([stream, *buffers[:-1]]):
        path = tmp_path / f"part{i}"
        path.write_bytes(part)
        files.append(str(path))
    helper("write-pickle", str(brain.path), brain.namespace, "short", *files)
    done = subprocess.run([str(BRAIN), "--store", str(brain.path), "cat", "short"], capture_output=True, timeout=60)
    assert done.returncode == 1 and done.stdout == b""
    message = done.stderr.decode()
    assert "asks for buffer 3 of 2" in message and f"brain --store {brain.path} cat --raw short > FILE" in message, message


def brain_put(brain: Brain, name: str, data: bytes, codec: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BRAIN), "--store", str(brain.path), "put", name, "-", "-c", codec], input=data, capture_output=True, timeout=60
    )


# A field name in Latin-1 alone: NumPy writes it as a version 1 header of that encoding.
LATIN_1_NAME = np.zeros(2, dtype=[("é", "<i2")])


@pytest.mark.parametrize("kind", [*sorted(ARRAYS), "odd-names", "latin-1"])
def test_brain_put_stores_an_array_from_a_npy_file_and_from_cat(brain: Brain, kind: str) -> None:
    arr = {"odd-names": ODD_NAMES, "latin-1": LATIN_1_NAME}.get(kind)
    arr = ARRAYS[kind] if arr is None else arr
    saved = io.BytesIO()
    with warnings.catch_warnings():
        # Field names past Latin-1 make NumPy write version 3 (a UTF-8 header), and say so.
        warnings.simplefilter("ignore", UserWarning)
        np.save(saved, arr)
    brain[kind] = arr
    for source, data in (("numpy.save", saved.getvalue()), ("cat", npy_of(brain, kind)), ("cat --raw", npy_of(brain, kind, "--raw"))):
        done = brain_put(brain, "back", data, "ndarray")
        assert done.returncode == 0, (source, done.stderr)
        back = brain["back"]
        assert back.dtype == arr.dtype and back.shape == arr.shape, source
        assert back.flags.f_contiguous == arr.flags.f_contiguous, source
        if arr.dtype.names:
            for field in arr.dtype.names:
                assert back[field].tobytes() == arr[field].tobytes(), (source, field)
        else:
            assert back.tobytes(order="A") == arr.tobytes(order="A"), source


def _npy_header(dictionary: str) -> bytes:
    """A version 1 .npy header of ``dictionary``, padded as NumPy pads it."""
    text = dictionary.encode("latin-1")
    padded = text + b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded


def test_brain_put_of_what_is_not_a_whole_array_is_refused_and_keeps_the_old(brain: Brain) -> None:
    brain["a"] = "kept"
    saved = io.BytesIO()
    np.save(saved, np.arange(1000))
    npy = saved.getvalue()
    objects = io.BytesIO()
    np.save(objects, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    for data, words in (
        (b"not an array at all", "neither a .npy file"),
        (npy[:-8], "ends 8 bytes short"),
        (npy + b"extra", "more data than its .npy header says"),
        (npy[:20], "ends inside its .npy header"),
        (objects.getvalue(), "holds Python objects"),
        (b"\x93NUMPY\x01\x00\x00\x00", "its header claims 10 bytes"),
        (_npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 8), }"), "is too large"),
    ):
        done = brain_put(brain, "a", data, "ndarray")
        message = done.stderr.decode()
        assert done.returncode == 1 and words in message, message
        assert brain["a"] == "kept"


@pytest.mark.parametrize("kind", sorted(PICKLED))
def test_brain_put_stores_a_pickled_object_from_a_pickle_and_from_cat(brain: Brain, kind: str) -> None:
    thing = PICKLED[kind]
    brain[kind] = thing
    for source, data in (("pickle.dumps", pickle.dumps(thing, protocol=5)), ("protocol 0", None),
                         ("cat", npy_of(brain, kind)), ("cat --raw", npy_of(brain, kind, "--raw"))):
        if data is None:
            if kind != "no-buffer":
                continue
            data = pickle.dumps(thing, protocol=0)
        done = brain_put(brain, "back", data, "pickle5")
        assert done.returncode == 0, (source, done.stderr)
        assert same(brain["back"], thing), source


def test_brain_put_of_what_is_not_a_pickle_is_refused_and_keeps_the_old(brain: Brain) -> None:
    brain["p"] = "kept"
    stream = pickle.dumps({"a": 1}, protocol=5)
    buffers: list[pickle.PickleBuffer] = []
    with_buffers = pickle.dumps(np.arange(3), protocol=5, buffer_callback=buffers.append)
    for data, words in (
        (b"\x01\x02junk", "neither a pickle nor"),
        (stream[:-1], "without STOP"),
        (with_buffers, "asks for buffer 1 of 0"),
    ):
        done = brain_put(brain, "p", data, "pickle5")
        message = done.stderr.decode()
        assert done.returncode == 1 and words in message, message
        assert brain["p"] == "kept"


def dictionary_digest(column: pa.ChunkedArray) -> str:
    """The digest the Rust helper prints for a dictionary column of strings."""
    values = [v for v in column.to_pylist() if v is not None]
    quote = lambda v: "None" if v is None else f'Some("{v}")'  # noqa: E731 (Rust's Debug of Option<String>)
    first = quote(values[0] if values else None)
    last = quote(values[-1] if values else None)
    return f"nulls={column.null_count} dictionary first={first} last={last} values={','.join(values)}"


def test_rust_reads_dictionaries_and_nulls_written_by_python(brain: Brain) -> None:
    frame = pd.DataFrame(
        {
            "region": pd.Categorical(["north", None, "south", "north", "east"]),
            "units": pd.array([1, 2, None, 4, 5], dtype="Int64"),
        }
    )
    brain["frame"] = frame
    lines = helper("read-arrow", str(brain.path), brain.namespace, "frame").splitlines()
    assert lines[0] == "rows 5"
    table = pa.Table.from_pandas(frame, preserve_index=None)
    assert lines[1] == f"column region {dictionary_digest(table.column('region'))}"
    assert lines[2] == "column units nulls=1 sum=12"
    back = brain["frame"]
    pd.testing.assert_frame_equal(back, frame)


def test_python_reads_dictionaries_and_nulls_written_by_rust(brain: Brain) -> None:
    helper("write-arrow-dict", str(brain.path), brain.namespace, "dict")
    table = brain["dict"]
    assert isinstance(table, pa.Table)
    assert pa.types.is_dictionary(table.schema.field("region").type)
    assert table.schema.field("grade").type == pa.dictionary(pa.int8(), pa.string())
    assert table.column("region").to_pylist() == ["north", None, "south", "north", "east"]
    assert table.column("grade").to_pylist() == ["a", "b", "a", None, "c"]
    assert table.column("units").to_pylist() == [1, 2, None, 4, 5]
    frame = table.to_pandas()
    assert isinstance(frame["region"].dtype, pd.CategoricalDtype)
    lines = helper("read-arrow", str(brain.path), brain.namespace, "dict").splitlines()
    assert lines[1] == f"column region {dictionary_digest(table.column('region'))}"
