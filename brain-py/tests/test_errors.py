"""Bad input gets a clear brain exception, which is also the built-in one expected."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from brain import Brain, _brain
from brain.exceptions import (
    BrainBusyError,
    BrainCodecError,
    BrainCorruptError,
    BrainDescriptionError,
    BrainError,
    BrainNameEncodingError,
    BrainNameLengthError,
    BrainNamespaceNameError,
    BrainNameNotExistError,
    BrainNameTypeError,
    BrainStoreFullError,
    BrainStorePathError,
    BrainStoreUrlError,
    BrainTimeoutError,
    BrainUnsupportedObjectError,
)

BAD_NAMES = {"int": 1, "bytes": b"name", "None": None, "float": 1.5, "tuple": ("a",)}


@pytest.mark.parametrize("bad", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_non_str_names_are_a_type_error(brain: Brain, bad) -> None:
    brain["real"] = 1
    calls = [
        lambda: brain.__setitem__(bad, 1),
        lambda: brain.learn(bad, 1),
        lambda: brain[bad],
        lambda: brain.recall(bad),
        lambda: brain.exists(bad),
        lambda: brain.forget(bad),
        lambda: brain.get(bad),
        lambda: brain.view(bad),
        lambda: brain.metadata(bad),
        lambda: brain.lock(bad),
        lambda: brain.wait_for(bad, timeout=0.01),
        lambda: brain.__delitem__(bad),
    ]
    for call in calls:
        with pytest.raises(BrainNameTypeError) as info:
            call()
        assert isinstance(info.value, TypeError)
        assert type(bad).__name__ in str(info.value)
    assert brain.names() == ["real"]


def test_an_empty_name_is_a_length_error(brain: Brain) -> None:
    with pytest.raises(BrainNameLengthError) as info:
        brain[""] = 1
    assert isinstance(info.value, ValueError)
    assert "empty" in str(info.value)
    assert brain.names() == []


def test_a_lone_surrogate_in_a_name_namespace_or_description_is_refused_by_name(brain: Brain) -> None:
    # What os.fsdecode makes of a file name that is not UTF-8.
    bad = "report-\udcff.csv"
    brain["real"] = 1
    calls = [
        lambda: brain.__setitem__(bad, 1),
        lambda: brain.learn(bad, 1),
        lambda: brain[bad],
        lambda: brain.get(bad),
        lambda: brain.view(bad),
        lambda: brain.metadata(bad),
        lambda: brain.lock(bad),
        lambda: brain.wait_for(bad, timeout=0.01),
        lambda: brain.update(bad, lambda value: 1),
        lambda: brain.forget(bad),
        lambda: brain.__delitem__(bad),
    ]
    for call in calls:
        with pytest.raises(BrainNameEncodingError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert "lone surrogate ('\\udcff' at position 7)" in str(info.value), str(info.value)
    assert bad not in brain
    for call in [lambda: brain.set_namespace(bad), lambda: brain.names(namespace=bad)]:
        with pytest.raises(BrainNamespaceNameError, match="lone surrogate"):
            call()
    with pytest.raises(BrainDescriptionError, match="description .* holds a lone surrogate"):
        brain.learn("described", 1, description=bad)
    for call in [lambda: brain.watch(bad), lambda: brain.dump("unused", namespace=bad)]:
        with pytest.raises(BrainNamespaceNameError, match="lone surrogate"):
            call()

    assert brain.names() == ["real"]
    assert brain.namespace == "default"
    brain["table"] = pa.table({"a": [1]})
    with pytest.raises(ValueError, match="holds a lone surrogate"):
        brain.get("table", columns=[bad])


def test_a_name_of_any_unicode_and_punctuation_works(brain: Brain) -> None:
    names = ["名前", "a/b", "..", ".", "x" * 1000, " ", "\n", "emoji 😀", "nul\0byte"]
    for i, name in enumerate(names):
        brain[name] = i
    assert brain.names() == sorted(names)
    for i, name in enumerate(names):
        assert brain[name] == i


UNSUPPORTED = {
    "lambda": (lambda: lambda x: x, "function"),
    "threading.Lock": (threading.Lock, "lock"),
    "generator": (lambda: (i for i in range(3)), "generator"),
}


@pytest.mark.parametrize("make, type_name", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_objects(brain: Brain, make, type_name: str) -> None:
    brain["x"] = "old value"
    with pytest.raises(BrainUnsupportedObjectError) as info:
        brain["x"] = make()
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert type_name in message
    for codec in ("ndarray", "arrow", "pandas", "pickle"):
        assert codec in message
    assert brain["x"] == "old value"
    with pytest.raises(BrainUnsupportedObjectError):
        brain["new"] = make()
    assert "new" not in brain


def test_an_open_file_is_unsupported(brain: Brain, tmp_path: Path) -> None:
    with open(tmp_path / "f.txt", "w") as handle:
        with pytest.raises(BrainUnsupportedObjectError) as info:
            brain["f"] = handle
        # Inside a container too: the whole value is refused, nothing is stored.
        with pytest.raises(BrainUnsupportedObjectError):
            brain["nested"] = {"ok": 1, "file": handle}
    assert isinstance(info.value, TypeError)
    assert "TextIOWrapper" in str(info.value) and "pickle" in str(info.value)
    assert brain.names() == []


class _Refusing:
    """An object whose pickling raises what it is given."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        raise self.error


def test_errors_of_the_moment_while_pickling_are_not_unsupported_objects(brain: Brain) -> None:
    # What pickle says of an object it cannot pickle: unsupported, named.
    with pytest.raises(BrainUnsupportedObjectError) as info:
        brain["x"] = _Refusing(TypeError())
    assert "pickle said: TypeError." in str(info.value)
    # Errors of the moment raised while pickling reach the caller as they
    # were: memory that ran out, a deadline's signal, a connection lost.
    for error in (MemoryError(), TimeoutError("the request's deadline"), ConnectionError("lost")):
        with pytest.raises(type(error)) as raised:
            brain["x"] = [1, _Refusing(error)]
        assert raised.value is error and not isinstance(raised.value, BrainUnsupportedObjectError)
    assert brain.names() == []


def test_reading_a_name_never_set(brain: Brain) -> None:
    for read in (lambda: brain["nope"], lambda: brain.recall("nope"), lambda: brain.view("nope")):
        with pytest.raises(BrainNameNotExistError) as info:
            read()
        assert isinstance(info.value, KeyError)
        assert "nope" in str(info.value)
    with pytest.raises(KeyError):
        brain.update("nope", lambda v: v)
    with pytest.raises(KeyError):
        del brain["nope"]


def test_a_full_store_refuses_and_keeps_the_previous_value(store_url: str) -> None:
    brain = Brain(url=store_url, capacity=1_000_000)
    previous = np.arange(10_000, dtype="f8")  # 80 kB
    brain["x"] = previous
    used = brain.used()
    with pytest.raises(BrainStoreFullError) as info:
        brain["x"] = np.ones(250_000)  # 2 MB
    err = info.value
    assert isinstance(err, BrainError)
    assert err.needed >= 2_000_000
    assert err.capacity == 1_000_000
    assert err.used == used
    assert (err.free, err.objects) == (1_000_000 - used, 1)
    assert "full" in str(err)
    np.testing.assert_array_equal(brain["x"], previous)
    assert brain.used() == used
    with pytest.raises(BrainStoreFullError):
        brain["other"] = np.ones(250_000)
    assert brain.names() == ["x"]
    # A value that fits still goes in.
    brain["small"] = np.ones(1000)
    assert brain["small"].sum() == 1000


def test_a_full_store_says_a_replace_needs_room_for_both_copies(store_url: str) -> None:
    brain = Brain(url=store_url, capacity=3_000_000)
    brain["x"] = np.ones(200_000)  # 1.6 MB
    with pytest.raises(BrainStoreFullError) as info:
        brain["x"] = np.zeros(200_000)  # 1.6 MB more while the old one stays
    err = info.value
    assert err.namespace == "default" and err.name == "x"
    assert 1_600_000 <= err.replacing <= err.used
    assert err.filesystem_full is False
    assert (err.held, err.holders) == (0, [])
    assert "both copies" in str(err)
    assert brain["x"].sum() == 200_000
    del brain["x"]
    brain["x"] = np.zeros(200_000)  # deleting first makes room


def test_every_core_error_reaches_python_with_its_class_and_fields() -> None:
    """brain-core's errors that a test cannot cause quickly, converted as raised ones are."""
    busy = _brain._core_error("busy")
    assert type(busy) is BrainBusyError
    assert isinstance(busy, BrainError) and isinstance(busy, TimeoutError)
    assert busy.operation == "rebuild the usage count"
    assert busy.waited == 60.0
    assert busy.location == "/dev/shm/brain-0/test"
    assert busy.path == Path("/dev/shm/brain-0/test")
    assert "did not finish within 60 s" in str(busy)

    full = _brain._core_error("filesystem_full")
    assert type(full) is BrainStoreFullError
    assert (full.needed, full.used, full.capacity) == (3 << 20, 5 << 20, 8 << 20)
    assert full.filesystem_full is True
    assert (full.replacing, full.held, full.holders) == (2 << 20, 4 << 20, [123, 4567])
    assert (full.namespace, full.name) == ("ns", "frame")
    assert "pids 123, 4567" in str(full)


def test_a_store_path_that_is_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-dir"
    path.write_text("hello")
    with pytest.raises(BrainStorePathError) as info:
        Brain(path=path)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert str(path) in message and "not a directory" in message
    assert path.read_text() == "hello"


def test_wait_for_times_out(brain: Brain) -> None:
    with pytest.raises(BrainTimeoutError) as info:
        brain.wait_for("never", timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert "never" in str(info.value)


def test_wait_for_without_a_limit(brain: Brain) -> None:
    import threading

    threading.Timer(0.2, lambda: brain.__setitem__("later", 7)).start()
    assert brain.wait_for("later", timeout=None) == 7


def test_a_lock_this_process_holds_is_not_blamed_on_another(brain: Brain) -> None:
    with brain.lock("L"):
        with pytest.raises(BrainTimeoutError, match="or by another lock of this one"):
            with brain.lock("L", timeout=0.1):
                pass


def test_preallocate_zero_is_none_and_a_negative_says_what_it_takes(store_url: str) -> None:
    Brain(url=store_url, preallocate=0)["x"] = 1
    with pytest.raises(ValueError, match=r"0 for none"):
        Brain(url=store_url, preallocate=-5)


def test_an_empty_namespace_is_refused_by_watch_as_everywhere(brain: Brain) -> None:
    with pytest.raises(ValueError, match="namespace"):
        brain.watch(namespace="")


def test_an_empty_namespace_is_refused_before_a_store_is_made(tmp_path: Path) -> None:
    store = tmp_path / "never"
    with pytest.raises(BrainNamespaceNameError, match="non-empty"):
        Brain(path=store, namespace="")
    assert not store.exists()


def test_a_dump_level_outside_zstds_is_refused(brain: Brain, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="-7 .* 22"):
        brain.dump(tmp_path / "dump", level=99)
    assert not (tmp_path / "dump").exists()


def test_update_needs_a_callable(brain: Brain) -> None:
    with pytest.raises(TypeError):
        brain.update("x", 5)


def test_update_refuses_keywords_it_does_not_take(brain: Brain) -> None:
    # A timeout asked for, or a misspelt default, would otherwise be ignored:
    # the first waits for ever on a held lock, the second starts from nothing.
    with pytest.raises(TypeError, match=r"not timeout=; .*brain.lock\(name, timeout"):
        brain.update("n", lambda v: v + 1, default=0, timeout=0.5)
    with pytest.raises(TypeError, match="not defualt="):
        brain.update("n", lambda v: v + 1, defualt=0)
    assert "n" not in brain
    assert brain.update("n", lambda v: v + 1, default=0) == 1


class _ReopensABadUrl:
    """Unpickles the way a pickled Brain does, into a store URL that fails."""

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        from brain._brain_class import _reopen

        return _reopen, ("default", "nope://x")


def test_brains_own_errors_while_unpickling_pass_as_they_are(brain: Brain) -> None:
    # Not "a pickle this process cannot rebuild": the store it reopens is bad.
    brain["reopens"] = _ReopensABadUrl()
    with pytest.raises(BrainStoreUrlError):
        brain["reopens"]


def test_update_of_several_names_sets_default_and_optimistic_too(brain: Brain) -> None:
    # As dict.update: in this form they are names like any other.
    brain.update(default=1, optimistic=0, other=2)
    assert (brain["default"], brain["optimistic"], brain["other"]) == (1, 0, 2)


def test_tell_during_a_long_write_in_another_thread_does_not_deadlock(brain: Brain) -> None:
    writer = brain.store.writer(brain.namespace, "big", "raw")
    payload = np.ones(200 << 20, dtype=np.uint8)
    done = threading.Event()

    def write() -> None:
        writer.write(payload)
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    positions = []
    while not done.is_set():
        positions.append(writer.tell())  # waits for the writer's lock without holding the GIL
    thread.join(timeout=60)
    assert not thread.is_alive(), "the write never finished"
    assert writer.tell() == payload.nbytes
    writer.abort()
    assert all(p in (0, payload.nbytes) for p in positions)


def test_an_empty_description_keeps_the_old_one_as_brain_plasma_did(brain: Brain) -> None:
    brain.learn("x", 1, description="the first")
    brain.learn("x", 2, description="")
    assert brain.metadata("x")["description"] == "the first"
    brain.learn("x", 3, description="the second")
    assert brain.metadata("x")["description"] == "the second"


@pytest.mark.shm_only("damages the object's file on disk; a memory store has no files")
def test_a_damaged_object_can_be_overwritten(brain: Brain) -> None:
    # Too large for the table of small objects: a file of its own.
    brain["x"] = "soon damaged " * 300
    ns_dir = next(p for p in (Path(brain.path) / "ns").iterdir() if (p / ".namespace").read_text() == "default")
    path = ns_dir / brain.object_id("x")
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[80] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BrainCorruptError):
        brain["x"]
    brain["x"] = "repaired"
    assert brain["x"] == "repaired"


def test_set_capacity_is_the_size_until_taken_away(brain: Brain) -> None:
    brain.set_capacity(1 << 20)
    assert brain.size() == brain.bytes == 1 << 20
    assert brain.mb == "1 MB"
    brain.set_capacity(None)
    assert brain.store.usage()["capacity"] is None
    assert brain.size() > 1 << 20


def test_a_malformed_pickle_payload_is_a_codec_error_not_garbage(brain: Brain) -> None:
    # A parts table with no parts, and one whose part lies outside the payload.
    brain.store.put(brain.namespace, "empty", "pickle5", [bytes(8)])
    with pytest.raises(BrainCodecError, match="pickle with no parts"):
        brain["empty"]
    outside = (1).to_bytes(4, "little") + bytes(4) + (64).to_bytes(8, "little") + (10**6).to_bytes(8, "little")
    brain.store.put(brain.namespace, "outside", "pickle5", [outside])
    with pytest.raises(BrainCodecError, match="lies outside the payload"):
        brain["outside"]


FIXTURE_DUMP = Path(__file__).resolve().parents[2] / "brain-persist" / "tests" / "fixtures" / "dump"


def test_an_object_of_a_codec_from_a_newer_release_says_so(brain: Brain, tmp_path: Path) -> None:
    # The frozen dump of the format fixtures holds an object of codec 42,
    # as written by a release that knows it.
    shutil.copytree(FIXTURE_DUMP, tmp_path / "dump")
    report = brain.restore(tmp_path / "dump")
    assert report["restored"] == 8
    brain.set_namespace("名前空間")
    obj = brain.view("from a newer build")
    assert obj.codec == "unknown"
    with pytest.raises(BrainCodecError, match="cannot read; upgrade brain"):
        brain["from a newer build"]
    assert bytes(memoryview(obj)) == b"bytes of a codec this build does not know"


@pytest.mark.parametrize("codec", ["arrow", "pandas", "polars"])
def test_a_table_payload_that_is_not_an_arrow_file_is_a_codec_error(brain: Brain, codec: str) -> None:
    # Bytes stored under a table's codec by another writer (an Arrow IPC
    # stream, say): every way of reading it says which object and what to do.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema([("a", pa.int64())])) as writer:
        writer.write_table(pa.table({"a": [1, 2]}))
    brain.store.put(brain.namespace, "bad", codec, [sink.getvalue().to_pybytes()], "")
    for how in ({}, {"as_arrow": True}, {"as_pandas": True}, {"as_polars": True}):
        with pytest.raises(BrainCodecError, match="object 'bad' in namespace 'default' is stored as a table") as caught:
            brain.get("bad", **how)
        assert "delete it or write it again" in str(caught.value)
    with pytest.raises(BrainCodecError, match="'bad'|\"bad\""):
        brain.get("bad", columns=["a"])
