"""Errors in the caller's language: a Python user's exceptions advise Python
calls and arguments, never the command line's flags or Rust's builders; long
names are cut; capacities take the command's size strings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from brain import Brain
from brain.exceptions import (
    BrainCorruptError,
    BrainDumpConflictError,
    BrainDumpError,
    BrainDumpNotFoundError,
    BrainLockTimeoutError,
    BrainNameNotExistError,
    BrainNamespaceNotExistError,
    BrainStoreFullError,
    BrainStorePathError,
    BrainStoreUrlError,
    BrainTimeoutError,
)

# What advice for the shell or for Rust looks like: `brain rm`, --on-conflict, StoreBuilder::capacity.
NOT_PYTHON = re.compile(r"`brain (?!sync)|(?<![\w-])--(?!shm-size)[a-z]|StoreBuilder|::")


def python_terms(err: BaseException) -> str:
    message = str(err)
    assert not NOT_PYTHON.search(message), f"advice in another language: {message}"
    assert len(message) < 1_000, f"{len(message)} characters: {message[:300]}"
    return message


def test_a_full_store_advises_python_calls(store_url: str) -> None:
    brain = Brain(url=store_url, capacity="1M")
    brain["first"] = np.zeros(80_000)
    with pytest.raises(BrainStoreFullError) as info:
        brain["second"] = np.zeros(80_000)
    message = python_terms(info.value)
    assert "brain.set_capacity(" in message and "Brain(capacity=" in message, message
    assert "del brain[name]" in message, message


def test_an_object_larger_than_the_store_advises_python_calls(store_url: str) -> None:
    brain = Brain(url=store_url, capacity="1M")
    with pytest.raises(BrainStoreFullError) as info:
        brain["big"] = np.zeros(1_000_000)
    message = python_terms(info.value)
    assert "brain.set_capacity(" in message and "Brain(capacity=" in message, message
    assert "no delete makes room" in message and "del brain[name]" not in message, message


def test_restore_advises_python_arguments(brain: Brain, tmp_path: Path, new_store) -> None:
    brain["a"] = np.arange(100_000)
    brain.dump(tmp_path / "dump")

    with pytest.raises(BrainDumpConflictError) as info:
        brain.restore(tmp_path / "dump")
    message = python_terms(info.value)
    assert 'on_conflict="skip"' in message and 'on_conflict="overwrite"' in message, message

    with pytest.raises(ValueError) as bad_mode:
        brain.restore(tmp_path / "dump", on_conflict="merge")  # type: ignore[arg-type]
    message = python_terms(bad_mode.value)
    assert 'on_conflict="merge"' in message and '"skip"' in message, message

    with pytest.raises(BrainDumpNotFoundError) as missing:
        brain.restore(tmp_path / "nowhere")
    assert "brain.dump(" in python_terms(missing.value)

    with pytest.raises(BrainNamespaceNotExistError) as no_namespace:
        brain.restore(tmp_path / "dump", namespace="absent")
    assert "Brain.list_dump(" in python_terms(no_namespace.value)

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("not a dump")
    with pytest.raises(BrainDumpError) as foreign:
        brain.restore(tmp_path / "foreign")
    assert "brain.dump()" in python_terms(foreign.value)

    small = Brain(url=new_store(), capacity="64K")
    with pytest.raises(BrainStoreFullError) as full:
        small.restore(tmp_path / "dump")
    message = python_terms(full.value)
    assert "brain.set_capacity(" in message and "namespace=" in message, message


def test_opening_a_store_advises_python_arguments(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(BrainStorePathError) as info:
        Brain(path=not_a_dir)
    assert "Brain(path=...)" in python_terms(info.value)
    # Each reason's advice, in Python's terms.
    others = tmp_path / "others"
    others.mkdir()
    (others / "notes.txt").write_text("x")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    shared.chmod(0o1777)
    for path, advice in ((others, "give a new or empty directory"), (shared, "chmod 700")):
        with pytest.raises(BrainStorePathError) as info:
            Brain(path=path)
        message = python_terms(info.value)
        assert advice in message and "Brain(path=...)" in message, message
        assert "remove it" not in message or path is not shared, message
    with pytest.raises(BrainStoreUrlError) as url:
        Brain(url="ftp://somewhere")
    assert "Brain(url=...)" in python_terms(url.value)


def test_a_held_lock_advises_a_timeout(brain: Brain) -> None:
    other = Brain(url=brain.url)
    with brain.lock("row"):
        with pytest.raises(BrainLockTimeoutError) as info:
            other.lock("row", timeout=0.05)
    assert "brain.lock(name, timeout=" in python_terms(info.value)


@pytest.mark.shm_only("damages an object's file on disk; a memory store has no files")
def test_a_corrupt_object_advises_python_calls(brain: Brain) -> None:
    # Too large for the table of small objects: a file of its own.
    brain["x"] = "soon damaged " * 300
    ns_dir = next(p for p in (Path(brain.path or "") / "ns").iterdir() if (p / ".namespace").is_file())
    path = ns_dir / (brain.object_id("x") or "")
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[80] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BrainCorruptError) as info:
        brain["x"]
    message = python_terms(info.value)
    assert "del brain[name]" in message and "brain.store.fsck(" in message, message


def test_long_names_are_cut_in_messages(brain: Brain) -> None:
    long = "n" * 65_536
    cut = f"'{'n' * 100}…' (65536 bytes)"
    raised = [
        (BrainNameNotExistError, lambda: brain[long]),
        (BrainNameNotExistError, lambda: brain.view(long)),
        (BrainNameNotExistError, lambda: brain.__delitem__(long)),
        (BrainNamespaceNotExistError, lambda: brain.remove_namespace(long)),
    ]
    for kind, call in raised:
        with pytest.raises(kind) as info:
            call()
        assert cut in python_terms(info.value), str(info.value)[:300]
    # From the store itself, quoted as Rust quotes them.
    with pytest.raises(BrainTimeoutError) as timeout:
        brain.wait_for(long, timeout=0.01)
    assert f'"{"n" * 100}…" (65536 bytes)' in python_terms(timeout.value)
    # The exception's attributes keep the whole name.
    assert timeout.value.name == long  # type: ignore[attr-defined]


SIZES = {"64M": 64 << 20, "1G": 1 << 30, "512KiB": 512 << 10, "1.5G": 3 << 29, "10MB": 10_000_000, "4096": 4096}


@pytest.mark.parametrize("text, expected", SIZES.items(), ids=SIZES.keys())
def test_capacity_takes_the_commands_sizes(store_url: str, text: str, expected: int) -> None:
    brain = Brain(url=store_url, capacity=text)
    assert brain.store.usage()["capacity"] == expected
    brain.set_capacity("none")
    assert brain.store.usage()["capacity"] is None
    brain.set_capacity(text)
    assert brain.store.usage()["capacity"] == expected
    Brain(url=store_url, capacity="none")
    assert brain.store.usage()["capacity"] is None


BAD_CAPACITIES = {
    "negative": (-5, ValueError),
    "zero": (0, ValueError),
    "zero string": ("0", ValueError),
    "negative string": ("-1G", ValueError),
    "unknown unit": ("12Q", ValueError),
    "words": ("lots", ValueError),
    "too large": (2**64, ValueError),
    "float": (1.5e9, TypeError),
    "bool": (True, TypeError),
    "list": ([1] * 10_000, TypeError),
}


@pytest.mark.parametrize("value, kind", BAD_CAPACITIES.values(), ids=BAD_CAPACITIES.keys())
def test_a_bad_capacity_says_what_is_accepted(store_url: str, value: object, kind: type[Exception]) -> None:
    brain = Brain(url=store_url, capacity="1G")
    for call, attempt in [("Brain(capacity=", lambda: Brain(url=store_url, capacity=value)),
                          ("brain.set_capacity(", lambda: brain.set_capacity(value))]:  # type: ignore[arg-type]
        with pytest.raises(kind) as info:
            attempt()
        message = python_terms(info.value)
        assert message.startswith(call), message
        assert "'64M'" in message and "'none'" in message and "int" in message, message
    assert brain.store.usage()["capacity"] == 1 << 30


def test_arguments_of_the_wrong_type_name_the_call(brain: Brain) -> None:
    brain["a"] = 1
    attempts = {
        "Brain(url=": lambda: Brain(url=5),  # type: ignore[arg-type]
        "brain.learn(..., description=": lambda: brain.learn("a", 2, description=5),  # type: ignore[arg-type]
        "brain.names(namespace=": lambda: brain.names(namespace=5),  # type: ignore[arg-type]
        "brain.remove_namespace(": lambda: brain.remove_namespace(5),  # type: ignore[arg-type]
    }
    for call, attempt in attempts.items():
        with pytest.raises((TypeError, ValueError)) as info:
            attempt()
        message = python_terms(info.value)
        assert message.startswith(call) and "int" in message, message
    # Any truthy flag counts as asked for, as bools do.
    assert brain.get("a", as_arrow="yes") == 1  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one of as_arrow"):
        brain.get("a", as_arrow="yes", as_pandas=1)  # type: ignore[arg-type]
    assert brain["a"] == 1
